//! A small, hand-written demo company: the directory `orgsync demo` shows and the tests reach for
//! when they need something realistic but readable.

use super::directory::{Directory, ExtAttrItem, Gender, SimDepartment, SimUser};

/// (userid, name, gender, [(department, order, is_leader)], position, mobile, status, direct leader)
type Row = (
    &'static str,
    &'static str,
    Gender,
    &'static [(u32, u32, u8)],
    &'static str,
    &'static str,
    u8,
    &'static [&'static str],
);

use Gender::{Female as F, Male as M};

const MEMBERS: &[Row] = &[
    (
        "xuhao",
        "徐浩",
        M,
        &[(1, 0, 1)],
        "首席执行官",
        "13801012345",
        1,
        &[],
    ),
    (
        "zhangwei",
        "张伟",
        M,
        &[(2, 100, 1)],
        "技术总监",
        "13911220876",
        1,
        &["xuhao"],
    ),
    (
        "lina",
        "李娜",
        F,
        &[(3, 100, 1)],
        "后端组负责人",
        "15010873321",
        1,
        &["zhangwei"],
    ),
    (
        "wangfang",
        "王芳",
        F,
        &[(3, 90, 0)],
        "后端工程师",
        "18612093456",
        1,
        &["lina"],
    ),
    (
        "liuyang",
        "刘洋",
        M,
        &[(4, 100, 1)],
        "前端组负责人",
        "13761524410",
        1,
        &["zhangwei"],
    ),
    (
        "chenjing",
        "陈静",
        F,
        &[(4, 80, 0)],
        "前端工程师",
        "15921347788",
        1,
        &["liuyang"],
    ),
    // In two departments, with a per-department order above 2^31.
    (
        "yangjie",
        "杨杰",
        M,
        &[(3, 4_000_000_000, 0), (4, 0, 0)],
        "全栈工程师",
        "17722345019",
        1,
        &["lina"],
    ),
    // WeCom keeps the userid's spelling but compares it case-insensitively.
    (
        "ZhaoLei",
        "赵磊",
        M,
        &[(5, 100, 1)],
        "市场总监",
        "13501198732",
        1,
        &["xuhao"],
    ),
    (
        "huangmin",
        "黄敏",
        F,
        &[(5, 50, 0)],
        "市场专员",
        "18917654320",
        1,
        &["ZhaoLei"],
    ),
    (
        "zhouqiang",
        "周强",
        M,
        &[(6, 100, 1)],
        "行政人事经理",
        "13660021987",
        1,
        &["xuhao"],
    ),
    (
        "wuxiuying",
        "吴秀英",
        F,
        &[(6, 60, 0)],
        "人事专员",
        "15889901234",
        1,
        &["zhouqiang"],
    ),
    (
        "sunting",
        "孙婷",
        F,
        &[(2, 80, 0)],
        "产品经理",
        "18801276543",
        1,
        &["zhangwei"],
    ),
    (
        "hujun",
        "胡军",
        M,
        &[(3, 70, 0)],
        "运维工程师",
        "13311908765",
        4,
        &["lina"],
    ),
    (
        "zhuxin",
        "朱欣",
        F,
        &[(5, 40, 0), (6, 40, 0)],
        "品牌与行政专员",
        "19912348765",
        1,
        &["ZhaoLei"],
    ),
    (
        "gaopeng",
        "高鹏",
        M,
        &[(3, 60, 0)],
        "测试工程师",
        "15210987654",
        2,
        &["lina"],
    ),
];

impl Directory {
    /// 星河科技: 6 departments three levels deep and 15 members, with the awkward cases a
    /// client must get right (two departments, an order above 2^31, an upper-case userid,
    /// disabled and not-yet-activated members). It has a contact-sync secret, so `list_id`
    /// works too.
    pub fn sample() -> Directory {
        let mut directory = Directory::new(
            "ww4d5f1c2b8a7e6390",
            "Xh7qT2mVbN9cR4kLpW8sY1dF6gJ3zA0eU5iO2nM7rQk",
        );
        directory.contact_sync_secret = Some("Cs9LmQ2wErT5yUiO8pAsD3fGhJ6kLzX1cVbN4mQwE7r".into());
        let departments: [(u32, &str, Option<&str>, u32, u32); 6] = [
            (1, "星河科技", Some("Xinghe Tech"), 0, 100_000_000),
            (2, "研发中心", Some("R&D Center"), 1, 3_000_000_000),
            (3, "后端组", None, 2, 100_000),
            (4, "前端组", None, 2, 99_000),
            (5, "市场部", Some("Marketing"), 1, 99_999_000),
            (6, "行政人事部", None, 1, 99_998_000),
        ];
        directory.departments = departments
            .into_iter()
            .map(|(id, name, name_en, parentid, order)| SimDepartment {
                name_en: name_en.map(Into::into),
                order,
                ..SimDepartment::new(id, name, parentid)
            })
            .collect();

        for (serial, &(userid, name, gender, memberships, position, mobile, status, leaders)) in
            MEMBERS.iter().enumerate()
        {
            let ids: Vec<u32> = memberships.iter().map(|m| m.0).collect();
            let key = userid.to_lowercase();
            let mut user = SimUser::new(userid, name, &ids);
            user.order = memberships.iter().map(|m| m.1).collect();
            user.is_leader_in_dept = memberships.iter().map(|m| m.2).collect();
            user.gender = gender;
            user.position = position.into();
            user.mobile = mobile.into();
            user.status = status;
            user.direct_leader = leaders.iter().map(|l| l.to_string()).collect();
            user.email = format!("{key}@xinghe.example.com");
            user.biz_mail = format!("{key}@xinghe.exmail.example.com");
            user.avatar = format!("https://wework.qpic.cn/wwhead/sample{serial:02}x9Kd2Lq/0");
            user.thumb_avatar =
                format!("https://wework.qpic.cn/wwhead/sample{serial:02}x9Kd2Lq/100");
            user.qr_code = format!(
                "https://open.work.weixin.qq.com/wwopen/userQRCode?vcode=vc5e1a{serial:02}d7c3"
            );
            user.telephone = if serial % 3 == 0 {
                format!("010-6255{serial:04}")
            } else {
                String::new()
            };
            user.address = "北京市海淀区中关村大街1号".into();
            user.external_position = if serial % 4 == 0 {
                position.into()
            } else {
                String::new()
            };
            user.extattr
                .attrs
                .push(ExtAttrItem::text("工号", format!("XH{:04}", serial + 1)));
            if serial % 5 == 0 {
                user.alias = ["Tony", "Lily", "Grace"][serial / 5 % 3].into();
                user.extattr.attrs.push(ExtAttrItem::web(
                    "个人主页",
                    "主页",
                    format!("https://xinghe.example.com/~{key}"),
                ));
            }
            for &(department, _, leader) in memberships {
                if leader == 1 {
                    if let Some(d) = directory
                        .departments
                        .iter_mut()
                        .find(|d| d.id == department)
                    {
                        d.department_leader.push(userid.into());
                    }
                }
            }
            directory.users.push(user);
        }
        directory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_has_the_cases_the_brief_asks_for() {
        let sample = Directory::sample();
        sample.validate().unwrap();
        assert_eq!(sample.departments.len(), 6);
        assert_eq!(sample.users.len(), 15);
        assert!(sample.users.iter().any(|u| u.department.len() == 2));
        assert!(sample
            .departments
            .iter()
            .any(|d| !d.department_leader.is_empty()));
        let big = 1u32 << 31;
        assert!(sample.departments.iter().any(|d| d.order > big));
        assert!(sample
            .users
            .iter()
            .any(|u| u.order.iter().any(|&o| o > big)));
        assert!(sample
            .users
            .iter()
            .any(|u| u.userid.chars().any(|c| c.is_ascii_uppercase())));
        for user in &sample.users {
            assert_eq!(user.mobile.len(), 11);
            assert!(user.mobile.starts_with('1'));
            assert!(user.mobile.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
