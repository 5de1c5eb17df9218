//! Word lists for generated directories: common surnames and given-name characters with their
//! pinyin (for userids), job titles, department names.

/// (surname, pinyin), most common first, so picking from the front more often looks like
/// a real company.
#[rustfmt::skip]
pub(crate) const SURNAMES: &[(&str, &str)] = &[
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"),
    ("袁", "yuan"), ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"),
    ("余", "yu"), ("杜", "du"), ("叶", "ye"), ("程", "cheng"), ("苏", "su"),
    ("魏", "wei"), ("吕", "lv"), ("丁", "ding"), ("任", "ren"), ("沈", "shen"),
    ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"), ("钟", "zhong"),
    ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
    ("石", "shi"), ("廖", "liao"), ("贾", "jia"), ("夏", "xia"), ("韦", "wei"),
    ("方", "fang"), ("白", "bai"), ("邹", "zou"), ("孟", "meng"), ("熊", "xiong"),
    ("秦", "qin"), ("邱", "qiu"), ("江", "jiang"), ("尹", "yin"), ("薛", "xue"),
    ("闫", "yan"), ("段", "duan"), ("雷", "lei"), ("侯", "hou"), ("龙", "long"),
    ("史", "shi"), ("陶", "tao"), ("黎", "li"), ("贺", "he"), ("顾", "gu"),
    ("毛", "mao"), ("郝", "hao"), ("龚", "gong"), ("邵", "shao"), ("万", "wan"),
    ("钱", "qian"), ("严", "yan"), ("覃", "qin"), ("武", "wu"), ("戴", "dai"),
    ("欧阳", "ouyang"), ("司马", "sima"), ("上官", "shangguan"), ("诸葛", "zhuge"),
];

/// Given-name characters that read as male, female, or either.
#[rustfmt::skip]
pub(crate) const GIVEN_MALE: &[(&str, &str)] = &[
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("斌", "bin"), ("超", "chao"), ("刚", "gang"),
    ("鹏", "peng"), ("辉", "hui"), ("浩", "hao"), ("凯", "kai"), ("俊", "jun"),
    ("博", "bo"), ("睿", "rui"), ("泽", "ze"), ("志", "zhi"), ("海", "hai"),
    ("建", "jian"), ("峰", "feng"), ("宇", "yu"), ("轩", "xuan"), ("毅", "yi"),
];

#[rustfmt::skip]
pub(crate) const GIVEN_FEMALE: &[(&str, &str)] = &[
    ("芳", "fang"), ("娜", "na"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("秀", "xiu"), ("霞", "xia"), ("英", "ying"), ("萍", "ping"),
    ("红", "hong"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"), ("倩", "qian"),
    ("怡", "yi"), ("欣", "xin"), ("馨", "xin"), ("悦", "yue"), ("晴", "qing"),
    ("诗", "shi"), ("颖", "ying"), ("慧", "hui"), ("璐", "lu"), ("瑶", "yao"),
];

#[rustfmt::skip]
pub(crate) const GIVEN_EITHER: &[(&str, &str)] = &[
    ("明", "ming"), ("华", "hua"), ("平", "ping"), ("文", "wen"), ("佳", "jia"),
    ("嘉", "jia"), ("思", "si"), ("子", "zi"), ("晨", "chen"), ("宁", "ning"),
    ("安", "an"), ("一", "yi"), ("天", "tian"), ("云", "yun"), ("雨", "yu"),
];

#[rustfmt::skip]
pub(crate) const POSITIONS: &[&str] = &[
    "软件工程师", "高级软件工程师", "前端工程师", "后端工程师", "测试工程师",
    "运维工程师", "数据分析师", "算法工程师", "架构师", "产品经理",
    "交互设计师", "视觉设计师", "项目经理", "销售经理", "客户经理",
    "市场专员", "品牌经理", "人事专员", "招聘专员", "行政助理",
    "会计", "出纳", "财务经理", "法务顾问", "客服专员",
    "采购专员", "质量工程师", "技术支持", "部门经理", "总监",
];

/// Names for departments directly under the root.
#[rustfmt::skip]
pub(crate) const DIVISIONS: &[&str] = &[
    "研发中心", "产品中心", "市场部", "销售部", "人力资源部", "财务部",
    "行政部", "法务部", "客户成功部", "供应链管理部", "质量管理部", "战略发展部",
    "信息技术部", "采购部", "审计部", "品牌部", "公共关系部", "投资部",
    "国际业务部", "运营中心", "数据中心", "安全中心",
];

/// Names for the second level: sites and regions.
#[rustfmt::skip]
pub(crate) const SITES: &[&str] = &[
    "北京", "上海", "深圳", "广州", "杭州", "成都", "武汉", "西安", "南京", "苏州",
    "华北区", "华东区", "华南区", "西南区", "华中区",
];

/// Names for the deeper levels: teams.
#[rustfmt::skip]
pub(crate) const TEAMS: &[&str] = &[
    "平台组", "前端组", "后端组", "测试组", "运维组", "数据组", "算法组", "安全组",
    "架构组", "移动端组", "增长组", "交付组", "大客户组", "渠道组", "招聘组", "培训组",
];

#[rustfmt::skip]
pub(crate) const STREETS: &[&str] = &[
    "北京市海淀区中关村大街", "上海市浦东新区张江路", "深圳市南山区科技园南路",
    "广州市天河区珠江新城华夏路", "杭州市西湖区文三路", "成都市高新区天府大道",
];

#[rustfmt::skip]
pub(crate) const ENGLISH_NAMES: &[&str] = &[
    "David", "Kevin", "Jason", "Eric", "Tony", "Leo", "Jack", "Sam",
    "Amy", "Grace", "Lily", "Cindy", "Vivian", "Joy", "Iris", "Sophie",
];
