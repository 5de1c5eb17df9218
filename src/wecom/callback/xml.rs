//! The XML of WeCom callbacks: the envelope a POST carries, and the event inside it.
//!
//! Both are one flat `<xml>` element whose children are the fields. WeCom wraps some values in
//! CDATA and not others, and the choice differs between documents and over time, so a value is
//! its text and CDATA sections joined, with the five named entities and numeric character
//! references decoded, and trimmed. A field with child elements (`<ExtAttr><Item>…</Item></ExtAttr>`) is
//! checked for well-formedness and skipped. Anything else (a DOCTYPE, text beside the fields, a
//! field given twice, nesting deeper than [`MAX_DEPTH`], more than [`MAX_FIELDS`] fields or
//! [`MAX_CALLBACK_BYTES`] of input) is refused: this parser reads what WeCom sends, not XML in
//! general. Every step is linear in the input, so a hostile body costs no more than its size.

use crate::model::DepartmentId;

use super::MAX_CALLBACK_BYTES;

/// Element levels below `<xml>` (ExtAttr › Item › Text › Value is four).
pub const MAX_DEPTH: usize = 8;

/// Children of `<xml>`: a full `create_user` has about 25.
pub const MAX_FIELDS: usize = 128;

/// Why a callback body or event could not be read. Messages name fields and byte offsets, never
/// values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML is longer than {MAX_CALLBACK_BYTES} bytes")]
    TooLarge,
    #[error("the XML is not UTF-8")]
    NotUtf8,
    #[error("the XML has no <xml> root element")]
    MissingRoot,
    #[error("the XML nests elements more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("the XML has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("malformed XML at byte {at}: {reason}")]
    Malformed { at: usize, reason: &'static str },
    #[error("the callback has no {0} field")]
    MissingField(&'static str),
    #[error("the callback's {0} field has an invalid value")]
    BadValue(&'static str),
}

/// The body of a callback POST. Only `Encrypt` is required; it is what the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub encrypt: String,
    /// The corp id (a suite id for third-party suites).
    pub to_user_name: Option<String>,
    /// The app's id; absent or empty for callbacks that belong to no app.
    pub agent_id: Option<String>,
}

/// A decrypted callback message. The common fields are optional because nothing depends on them;
/// a contact change fails to parse only when it lacks the ids the change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub to_user_name: Option<String>,
    /// Always `sys` for contact changes.
    pub from_user_name: Option<String>,
    /// Unix seconds.
    pub create_time: Option<i64>,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `MsgType=event`, `Event=change_contact`.
    ContactChange(ContactChange),
    /// Any other message or event; nothing in it is read.
    Other {
        msg_type: Option<String>,
        event: Option<String>,
    },
}

/// What a `change_contact` event says changed: the ids a targeted sync re-reads. The attributes
/// some events also carry are not kept; since 2022-08-15 contact-sync URLs receive ids only, and
/// the member or department is fetched again either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactChange {
    /// `departments` is empty when the event does not list them.
    CreateUser {
        userid: String,
        departments: Vec<DepartmentId>,
    },
    /// `userid` is the id before the change; `new_userid` is set when the userid itself changed.
    UpdateUser {
        userid: String,
        new_userid: Option<String>,
        departments: Vec<DepartmentId>,
    },
    DeleteUser {
        userid: String,
    },
    CreateParty {
        id: DepartmentId,
        parent_id: Option<DepartmentId>,
    },
    UpdateParty {
        id: DepartmentId,
        parent_id: Option<DepartmentId>,
    },
    DeleteParty {
        id: DepartmentId,
    },
    UpdateTag {
        tag_id: u32,
        add_users: Vec<String>,
        del_users: Vec<String>,
        add_parties: Vec<DepartmentId>,
        del_parties: Vec<DepartmentId>,
    },
    /// A `ChangeType` this version does not know.
    Other {
        change_type: String,
    },
}

/// Reads the body of a callback POST.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, XmlError> {
    let fields = Fields::parse(body)?;
    Ok(Envelope {
        encrypt: fields.required("Encrypt")?.to_owned(),
        to_user_name: fields.optional("ToUserName")?.map(str::to_owned),
        agent_id: fields.optional("AgentID")?.map(str::to_owned),
    })
}

/// Reads a decrypted callback message.
pub fn parse_event(plaintext: &[u8]) -> Result<Event, XmlError> {
    let fields = Fields::parse(plaintext)?;
    let msg_type = fields.optional("MsgType")?;
    let event = fields.optional("Event")?;
    let kind = if msg_type == Some("event") && event == Some("change_contact") {
        EventKind::ContactChange(contact_change(&fields)?)
    } else {
        EventKind::Other {
            msg_type: msg_type.map(str::to_owned),
            event: event.map(str::to_owned),
        }
    };
    Ok(Event {
        to_user_name: fields.optional("ToUserName")?.map(str::to_owned),
        from_user_name: fields.optional("FromUserName")?.map(str::to_owned),
        create_time: fields.number("CreateTime")?,
        kind,
    })
}

fn contact_change(fields: &Fields<'_>) -> Result<ContactChange, XmlError> {
    let userid = || fields.required("UserID").map(str::to_owned);
    let departments = || fields.departments("Department");
    let id = || fields.required_number::<u32>("Id").map(DepartmentId::from);
    let parent_id = || Ok(fields.number::<u32>("ParentId")?.map(DepartmentId::from));
    Ok(match fields.required("ChangeType")? {
        "create_user" => ContactChange::CreateUser {
            userid: userid()?,
            departments: departments()?,
        },
        "update_user" => ContactChange::UpdateUser {
            userid: userid()?,
            new_userid: fields.optional("NewUserID")?.map(str::to_owned),
            departments: departments()?,
        },
        "delete_user" => ContactChange::DeleteUser { userid: userid()? },
        "create_party" => ContactChange::CreateParty {
            id: id()?,
            parent_id: parent_id()?,
        },
        "update_party" => ContactChange::UpdateParty {
            id: id()?,
            parent_id: parent_id()?,
        },
        "delete_party" => ContactChange::DeleteParty { id: id()? },
        "update_tag" => ContactChange::UpdateTag {
            tag_id: fields.required_number("TagId")?,
            add_users: fields.userids("AddUserItems")?,
            del_users: fields.userids("DelUserItems")?,
            add_parties: fields.departments("AddPartyItems")?,
            del_parties: fields.departments("DelPartyItems")?,
        },
        other => ContactChange::Other {
            change_type: other.to_owned(),
        },
    })
}

/// The children of `<xml>`, by name, in document order.
struct Fields<'a>(Vec<(&'a str, Value)>);

enum Value {
    Text(String),
    /// The field has child elements; their content is not kept.
    Nested,
}

impl<'a> Fields<'a> {
    fn parse(input: &'a [u8]) -> Result<Fields<'a>, XmlError> {
        if input.len() > MAX_CALLBACK_BYTES {
            return Err(XmlError::TooLarge);
        }
        let text = std::str::from_utf8(input).map_err(|_| XmlError::NotUtf8)?;
        Parser { text, pos: 0 }.document()
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The trimmed text of a field; `None` when it is absent or empty.
    fn optional(&self, name: &'static str) -> Result<Option<&str>, XmlError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Nested) => Err(XmlError::BadValue(name)),
            Some(Value::Text(text)) => Ok(Some(text.trim()).filter(|t| !t.is_empty())),
        }
    }

    fn required(&self, name: &'static str) -> Result<&str, XmlError> {
        self.optional(name)?.ok_or(XmlError::MissingField(name))
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, XmlError> {
        self.optional(name)?
            .map(|text| text.parse().map_err(|_| XmlError::BadValue(name)))
            .transpose()
    }

    fn required_number<T: std::str::FromStr>(&self, name: &'static str) -> Result<T, XmlError> {
        self.number(name)?.ok_or(XmlError::MissingField(name))
    }

    /// A comma list of department ids; empty when the field is absent.
    fn departments(&self, name: &'static str) -> Result<Vec<DepartmentId>, XmlError> {
        self.list(name)?
            .map(|id| {
                id.parse::<u32>()
                    .map(DepartmentId::from)
                    .map_err(|_| XmlError::BadValue(name))
            })
            .collect()
    }

    /// A comma list of userids; empty when the field is absent.
    fn userids(&self, name: &'static str) -> Result<Vec<String>, XmlError> {
        Ok(self.list(name)?.map(str::to_owned).collect())
    }

    fn list(&self, name: &'static str) -> Result<impl Iterator<Item = &str>, XmlError> {
        Ok(self
            .optional(name)?
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty()))
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn document(mut self) -> Result<Fields<'a>, XmlError> {
        if self.rest().starts_with('\u{feff}') {
            self.pos += '\u{feff}'.len_utf8();
        }
        self.misc()?;
        if !self.rest().starts_with('<') {
            return Err(XmlError::MissingRoot);
        }
        let (name, empty) = self.start_tag()?;
        if name != "xml" {
            return Err(XmlError::MissingRoot);
        }
        let mut fields = Vec::new();
        if !empty {
            self.root_content(&mut fields)?;
        }
        self.misc()?;
        if self.pos < self.text.len() {
            return Err(self.malformed("content after the root element"));
        }
        Ok(Fields(fields))
    }

    fn root_content(&mut self, fields: &mut Vec<(&'a str, Value)>) -> Result<(), XmlError> {
        loop {
            self.skip_whitespace();
            let rest = self.rest();
            if rest.starts_with("<!--") {
                self.comment()?;
            } else if rest.starts_with("</") {
                return self.end_tag("xml");
            } else if rest.starts_with("<!") || rest.starts_with("<?") {
                return Err(self.malformed("markup other than an element inside the root"));
            } else if rest.starts_with('<') {
                let (name, empty) = self.start_tag()?;
                let value = if empty {
                    Value::Text(String::new())
                } else {
                    self.field_content(name, 1)?
                };
                if fields.iter().any(|(n, _)| *n == name) {
                    return Err(self.malformed("a field appears twice"));
                }
                if fields.len() == MAX_FIELDS {
                    return Err(XmlError::TooManyFields);
                }
                fields.push((name, value));
            } else if rest.is_empty() {
                return Err(self.malformed("the root element is not closed"));
            } else {
                return Err(self.malformed("text outside a field"));
            }
        }
    }

    /// The content of an element whose start tag has been read, through its end tag. `depth` is
    /// the element's level below the root.
    fn field_content(&mut self, name: &str, depth: usize) -> Result<Value, XmlError> {
        let mut text = String::new();
        let mut nested = false;
        loop {
            let rest = self.rest();
            if let Some(after) = rest.strip_prefix("<![CDATA[") {
                let len = after
                    .find("]]>")
                    .ok_or_else(|| self.malformed("a CDATA section is not closed"))?;
                text.push_str(&after[..len]);
                self.pos += "<![CDATA[".len() + len + "]]>".len();
            } else if rest.starts_with("<!--") {
                self.comment()?;
            } else if rest.starts_with("</") {
                self.end_tag(name)?;
                return Ok(if nested {
                    Value::Nested
                } else {
                    Value::Text(text)
                });
            } else if rest.starts_with("<!") || rest.starts_with("<?") {
                return Err(self.malformed("markup other than an element inside a field"));
            } else if rest.starts_with('<') {
                if depth >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let (child, empty) = self.start_tag()?;
                if !empty {
                    self.field_content(child, depth + 1)?;
                }
                nested = true;
            } else if rest.is_empty() {
                return Err(self.malformed("an element is not closed"));
            } else {
                let len = rest.find('<').unwrap_or(rest.len());
                let start = self.pos;
                self.pos += len;
                decode_entities(&rest[..len], &mut text).map_err(|offset| XmlError::Malformed {
                    at: start + offset,
                    reason: "an unknown or invalid entity",
                })?;
            }
        }
    }

    /// Reads `<name …>` or `<name …/>` (attributes are skipped) and says whether it was empty.
    fn start_tag(&mut self) -> Result<(&'a str, bool), XmlError> {
        self.pos += 1;
        let name = self.name()?;
        if !self
            .rest()
            .starts_with(|c: char| c.is_whitespace() || c == '/' || c == '>')
        {
            return Err(self.malformed("a tag name has an invalid character"));
        }
        let mut quote = None;
        let mut slash = false;
        for (i, c) in self.rest().char_indices() {
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                '>' => {
                    self.pos += i + 1;
                    return Ok((name, slash));
                }
                '<' => break,
                '"' | '\'' => {
                    quote = Some(c);
                    slash = false;
                }
                c if c.is_whitespace() => {}
                c => slash = c == '/',
            }
        }
        Err(self.malformed("a start tag is not closed"))
    }

    fn end_tag(&mut self, expected: &str) -> Result<(), XmlError> {
        self.pos += 2;
        let name = self.name()?;
        if name != expected {
            return Err(self.malformed("an end tag does not match its start tag"));
        }
        self.skip_whitespace();
        if !self.rest().starts_with('>') {
            return Err(self.malformed("an end tag is not closed"));
        }
        self.pos += 1;
        Ok(())
    }

    fn name(&mut self) -> Result<&'a str, XmlError> {
        let text = self.text;
        let rest = &text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.malformed("a tag has no name"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// Whitespace, comments and processing instructions (`<?xml …?>`) around the root.
    fn misc(&mut self) -> Result<(), XmlError> {
        loop {
            self.skip_whitespace();
            let rest = self.rest();
            if rest.starts_with("<!--") {
                self.comment()?;
            } else if let Some(after) = rest.strip_prefix("<?") {
                let len = after
                    .find("?>")
                    .ok_or_else(|| self.malformed("a processing instruction is not closed"))?;
                self.pos += 2 + len + 2;
            } else if rest.starts_with("<!") {
                return Err(self.malformed("a DOCTYPE or other declaration"));
            } else {
                return Ok(());
            }
        }
    }

    fn comment(&mut self) -> Result<(), XmlError> {
        let after = &self.rest()["<!--".len()..];
        let len = after
            .find("-->")
            .ok_or_else(|| self.malformed("a comment is not closed"))?;
        self.pos += "<!--".len() + len + "-->".len();
        Ok(())
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn malformed(&self, reason: &'static str) -> XmlError {
        XmlError::Malformed {
            at: self.pos,
            reason,
        }
    }
}

/// Appends `raw` to `out` with `&lt; &gt; &amp; &quot; &apos;` and `&#N;`/`&#xH;` decoded; on
/// error, the offset of the `&`.
fn decode_entities(raw: &str, out: &mut String) -> Result<(), usize> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let offset = raw.len() - rest.len() + amp;
        let after = &rest[amp + 1..];
        // The longest reference WeCom could send is `&#x10FFFF;`.
        let semi = after
            .bytes()
            .take(10)
            .position(|b| b == b';')
            .ok_or(offset)?;
        let decoded = match &after[..semi] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            reference => numeric_reference(reference).ok_or(offset)?,
        };
        out.push(decoded);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn numeric_reference(reference: &str) -> Option<char> {
    let number = reference.strip_prefix('#')?;
    // `from_str_radix` and `parse` accept a leading `+`; XML does not.
    if number.starts_with('+') || number.starts_with("x+") {
        return None;
    }
    let code = match number.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => number.parse().ok()?,
    };
    char::from_u32(code).filter(|&c| c != '\0')
}

#[cfg(test)]
mod tests;
