//! Which column is what: recognition of common CRM export headers (Salesforce, HubSpot, Dynamics
//! 365, Zoho) and explicit mapping files (TOML or JSON).
//!
//! Headers are compared after lower-casing and dropping everything but letters and digits, so
//! "Mobile Phone", "MobilePhone", "mobile_phone" and "Mobile-Phone" are the same. Every phone-like
//! column becomes one number to try, in the file's column order unless the mapping file orders
//! them. Columns that are not mapped are kept as lead attributes under their header.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// An explicit mapping, from a TOML or JSON file. Every field names a header of the file; fields
/// left out are recognised automatically unless `auto = false`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// Recognise unmapped standard columns from their headers (default true).
    pub auto: Option<bool>,
    pub crm_id: Option<String>,
    /// Phone columns in the order to try them.
    #[serde(default)]
    pub phones: Vec<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub subdivision: Option<String>,
    pub country: Option<String>,
    pub timezone: Option<String>,
    pub priority: Option<String>,
    pub consent_type: Option<String>,
    pub consent_source: Option<String>,
    pub consent_at: Option<String>,
    /// A CRM "do not call" flag column; a true value makes the row a DNC outcome.
    pub do_not_call: Option<String>,
    /// Columns to drop entirely (not kept as attributes).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Attribute names to use instead of headers: `{"Company Name" = "company"}`.
    #[serde(default)]
    pub rename: HashMap<String, String>,
}

impl MappingSpec {
    /// Reads a `.toml` or `.json` file (by extension, else as [`MappingSpec::parse`] does).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("json") => serde_json::from_str(&text)
                .with_context(|| format!("{}: bad JSON mapping", path.display())),
            Some("toml") => toml::from_str(&text)
                .with_context(|| format!("{}: bad TOML mapping", path.display())),
            _ => Self::parse(&text).with_context(|| format!("{}: bad mapping", path.display())),
        }
    }

    /// Parses mapping text (an upload's `mapping` field): JSON when it starts with `{`, else TOML.
    /// The error names the format and the offending key or position.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let t = text.trim_start_matches('\u{feff}').trim();
        anyhow::ensure!(!t.is_empty(), "the mapping is empty");
        if t.starts_with('{') {
            serde_json::from_str(t).map_err(|e| anyhow::anyhow!("bad JSON mapping: {e}"))
        } else {
            toml::from_str(t)
                .map_err(|e| anyhow::anyhow!("bad TOML mapping: {}", e.to_string().trim()))
        }
    }
}

/// Resolved column indexes for one file.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Mapping {
    pub crm_id: Option<usize>,
    pub phones: Vec<usize>,
    pub first_name: Option<usize>,
    pub last_name: Option<usize>,
    pub email: Option<usize>,
    pub postal_code: Option<usize>,
    pub subdivision: Option<usize>,
    pub country: Option<usize>,
    pub timezone: Option<usize>,
    pub priority: Option<usize>,
    pub consent_type: Option<usize>,
    pub consent_source: Option<usize>,
    pub consent_at: Option<usize>,
    pub do_not_call: Option<usize>,
    /// (column, attribute name)
    pub attributes: Vec<(usize, String)>,
    pub headers: Vec<String>,
}

/// A summary for the report: header names per role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MappingSummary {
    pub crm_id: Option<String>,
    pub phones: Vec<String>,
    pub postal_code: Option<String>,
    pub timezone: Option<String>,
    pub consent: Vec<String>,
    pub do_not_call: Option<String>,
    pub attributes: Vec<String>,
}

pub fn normalize_header(h: &str) -> String {
    h.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    CrmId,
    Phone,
    FirstName,
    LastName,
    Email,
    Postal,
    Subdivision,
    Country,
    Timezone,
    Priority,
    ConsentType,
    ConsentSource,
    ConsentAt,
    DoNotCall,
}

/// The role a normalised header suggests, if any.
fn recognise(h: &str) -> Option<Role> {
    use Role::*;
    let exact = match h {
        "id" | "recordid" | "contactid" | "leadid" | "crmid" | "externalid" | "customerid"
        | "accountid" | "donotmodifycontact" | "donotmodifylead" | "contactowneridid"
        | "zohoid" | "hubspotid" | "recordidcontact" | "contactrecordid" => Some(CrmId),
        "firstname" | "first" | "givenname" | "fname" | "contactfirstname" => Some(FirstName),
        "lastname" | "last" | "surname" | "familyname" | "lname" | "contactlastname" => {
            Some(LastName)
        }
        "email" | "emailaddress" | "email1" | "primaryemail" | "emailaddress1" | "workemail" => {
            Some(Email)
        }
        "tz" | "timezone" | "contacttimezone" | "hstimezone" | "contactstimezone"
        | "timezonename" => Some(Timezone),
        "priority" | "leadpriority" | "dialpriority" => Some(Priority),
        "consenttype" | "consent" | "tcpaconsent" | "tcpaconsenttype" | "pewc" | "consentkind" => {
            Some(ConsentType)
        }
        "consentsource" | "optinsource" | "consentcapturedby" | "consenturl" => Some(ConsentSource),
        "consentdate" | "consenttimestamp" | "consentat" | "optindate" | "consentedat"
        | "optintimestamp" | "consentdatetime" | "consentgivenat" => Some(ConsentAt),
        "donotcall"
        | "dnc"
        | "donotphone"
        | "donotallowphonecalls"
        | "optedoutofphone"
        | "phoneoptout"
        | "donotcallflag"
        | "calloptout" => Some(DoNotCall),
        "country"
        | "mailingcountry"
        | "countryregion"
        | "address1countryregion"
        | "billingcountry"
        | "countrycode"
        | "countryiso" => Some(Country),
        _ => None,
    };
    if exact.is_some() {
        return exact;
    }
    let has = |s: &str| h.contains(s);
    if has("zip") || has("postal") || has("postcode") {
        return Some(Postal);
    }
    if (has("state") || has("province")) && !has("status") && !has("statement") {
        return Some(Subdivision);
    }
    let phone_like =
        has("phone") || has("mobile") || has("cell") || h.starts_with("tel") || has("telephone");
    let not_a_number = [
        "type",
        "ext",
        "extension",
        "optout",
        "donot",
        "consent",
        "country",
        "verified",
        "status",
        "valid",
        "carrier",
        "count",
        "date",
        "opt",
    ];
    if phone_like && !not_a_number.iter().any(|w| has(w)) {
        return Some(Phone);
    }
    None
}

impl Mapping {
    /// Resolves `spec` (or pure recognition when `None`) against the file's headers.
    pub fn resolve(headers: &[String], spec: Option<&MappingSpec>) -> anyhow::Result<Self> {
        let default_spec = MappingSpec::default();
        let spec = spec.unwrap_or(&default_spec);
        let auto = spec.auto.unwrap_or(true);
        let index = |name: &str| -> anyhow::Result<usize> {
            let n = normalize_header(name);
            headers
                .iter()
                .position(|h| h == name)
                .or_else(|| headers.iter().position(|h| normalize_header(h) == n))
                .ok_or_else(|| anyhow::anyhow!("the mapping names column {name:?}, which the file does not have (columns: {headers:?})"))
        };
        let mut m = Mapping {
            headers: headers.to_vec(),
            ..Default::default()
        };
        let mut used = vec![false; headers.len()];
        // The role each column was given explicitly, so a column named twice is refused by name.
        let mut given: Vec<Option<&'static str>> = vec![None; headers.len()];
        let mut claim =
            |i: usize, role: &'static str, used: &mut Vec<bool>| -> anyhow::Result<()> {
                if let Some(earlier) = given[i]
                    && earlier != role
                {
                    bail!(
                        "the mapping gives column {:?} two roles: {earlier} and {role}",
                        headers[i]
                    );
                }
                given[i] = Some(role);
                used[i] = true;
                Ok(())
            };
        let mut take = |slot: &mut Option<usize>,
                        role: &'static str,
                        name: &Option<String>,
                        used: &mut Vec<bool>|
         -> anyhow::Result<()> {
            if let Some(name) = name {
                let i = index(name)?;
                claim(i, role, used)?;
                *slot = Some(i);
            }
            Ok(())
        };
        take(&mut m.crm_id, "crm_id", &spec.crm_id, &mut used)?;
        take(&mut m.first_name, "first_name", &spec.first_name, &mut used)?;
        take(&mut m.last_name, "last_name", &spec.last_name, &mut used)?;
        take(&mut m.email, "email", &spec.email, &mut used)?;
        take(
            &mut m.postal_code,
            "postal_code",
            &spec.postal_code,
            &mut used,
        )?;
        take(
            &mut m.subdivision,
            "subdivision",
            &spec.subdivision,
            &mut used,
        )?;
        take(&mut m.country, "country", &spec.country, &mut used)?;
        take(&mut m.timezone, "timezone", &spec.timezone, &mut used)?;
        take(&mut m.priority, "priority", &spec.priority, &mut used)?;
        take(
            &mut m.consent_type,
            "consent_type",
            &spec.consent_type,
            &mut used,
        )?;
        take(
            &mut m.consent_source,
            "consent_source",
            &spec.consent_source,
            &mut used,
        )?;
        take(&mut m.consent_at, "consent_at", &spec.consent_at, &mut used)?;
        take(
            &mut m.do_not_call,
            "do_not_call",
            &spec.do_not_call,
            &mut used,
        )?;
        for p in &spec.phones {
            let i = index(p)?;
            claim(i, "phones", &mut used)?;
            if !m.phones.contains(&i) {
                m.phones.push(i);
            }
        }
        let mut ignored = vec![false; headers.len()];
        for name in &spec.ignore {
            let i = index(name)?;
            claim(i, "ignore", &mut used)?;
            ignored[i] = true;
        }
        if auto {
            let explicit_phones = !spec.phones.is_empty();
            for (i, h) in headers.iter().enumerate() {
                if used[i] {
                    continue;
                }
                let slot = match recognise(&normalize_header(h)) {
                    Some(Role::Phone) if !explicit_phones => {
                        m.phones.push(i);
                        used[i] = true;
                        continue;
                    }
                    Some(Role::Phone) | None => continue,
                    Some(Role::CrmId) => &mut m.crm_id,
                    Some(Role::FirstName) => &mut m.first_name,
                    Some(Role::LastName) => &mut m.last_name,
                    Some(Role::Email) => &mut m.email,
                    Some(Role::Postal) => &mut m.postal_code,
                    Some(Role::Subdivision) => &mut m.subdivision,
                    Some(Role::Country) => &mut m.country,
                    Some(Role::Timezone) => &mut m.timezone,
                    Some(Role::Priority) => &mut m.priority,
                    Some(Role::ConsentType) => &mut m.consent_type,
                    Some(Role::ConsentSource) => &mut m.consent_source,
                    Some(Role::ConsentAt) => &mut m.consent_at,
                    Some(Role::DoNotCall) => &mut m.do_not_call,
                };
                if slot.is_none() {
                    *slot = Some(i);
                    used[i] = true;
                }
            }
        }
        if m.phones.is_empty() {
            bail!(
                "no phone column found among {headers:?}: name them in a mapping file (`phones = [\"…\"]`)"
            );
        }
        for (i, h) in headers.iter().enumerate() {
            if !used[i] && !ignored[i] {
                let name = spec.rename.get(h).cloned().unwrap_or_else(|| {
                    if h.is_empty() {
                        format!("column_{}", i + 1)
                    } else {
                        h.clone()
                    }
                });
                m.attributes.push((i, name));
            }
        }
        Ok(m)
    }

    pub fn summary(&self) -> MappingSummary {
        let name = |i: &Option<usize>| i.map(|i| self.headers[i].clone());
        MappingSummary {
            crm_id: name(&self.crm_id),
            phones: self
                .phones
                .iter()
                .map(|&i| self.headers[i].clone())
                .collect(),
            postal_code: name(&self.postal_code),
            timezone: name(&self.timezone),
            consent: [self.consent_type, self.consent_source, self.consent_at]
                .iter()
                .flatten()
                .map(|&i| self.headers[i].clone())
                .collect(),
            do_not_call: name(&self.do_not_call),
            attributes: self.attributes.iter().map(|(_, n)| n.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn salesforce_hubspot_dynamics_zoho_headers() {
        let sf = h(&[
            "Contact ID",
            "First Name",
            "Last Name",
            "Phone",
            "Mobile Phone",
            "Mailing State/Province",
            "Mailing Zip/Postal Code",
            "Email",
            "Do Not Call",
            "Lead Source",
        ]);
        let m = Mapping::resolve(&sf, None).unwrap();
        assert_eq!(
            (m.crm_id, m.phones.clone(), m.first_name, m.last_name),
            (Some(0), vec![3, 4], Some(1), Some(2))
        );
        assert_eq!(
            (m.subdivision, m.postal_code, m.email, m.do_not_call),
            (Some(5), Some(6), Some(7), Some(8))
        );
        assert_eq!(m.attributes, vec![(9, "Lead Source".to_string())]);

        let hs = h(&[
            "Record ID",
            "First Name",
            "Last Name",
            "Phone Number",
            "Mobile Phone Number",
            "Time Zone",
            "Postal Code",
        ]);
        let m = Mapping::resolve(&hs, None).unwrap();
        assert_eq!(
            (m.crm_id, m.phones.clone(), m.timezone, m.postal_code),
            (Some(0), vec![3, 4], Some(5), Some(6))
        );

        let dy = h(&[
            "(Do Not Modify) Contact",
            "Full Name",
            "Business Phone",
            "Mobile Phone",
            "Address 1: ZIP/Postal Code",
            "Do not allow Phone Calls",
            "Business Phone Type",
        ]);
        let m = Mapping::resolve(&dy, None).unwrap();
        assert_eq!(
            (m.crm_id, m.phones.clone(), m.postal_code, m.do_not_call),
            (Some(0), vec![2, 3], Some(4), Some(5))
        );
        assert_eq!(
            m.attributes.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 6]
        );

        let zo = h(&[
            "CONTACTID",
            "First Name",
            "Last Name",
            "Phone",
            "Mobile",
            "Home Phone",
            "Mailing Zip",
            "Mailing State",
        ]);
        let m = Mapping::resolve(&zo, None).unwrap();
        assert_eq!(
            (m.crm_id, m.phones.clone(), m.postal_code, m.subdivision),
            (Some(0), vec![3, 4, 5], Some(6), Some(7))
        );
    }

    #[test]
    fn explicit_mapping_orders_phones_and_renames() {
        let hdr = h(&["Acct", "Work", "Cell", "Notes", "Company Name", "Phone"]);
        let spec: MappingSpec = toml::from_str(
            "crm_id = \"Acct\"\nphones = [\"Cell\", \"Work\"]\nignore = [\"Notes\"]\n[rename]\n\"Company Name\" = \"company\"\n",
        )
        .unwrap();
        let m = Mapping::resolve(&hdr, Some(&spec)).unwrap();
        assert_eq!(m.crm_id, Some(0));
        assert_eq!(m.phones, vec![2, 1], "explicit phones replace recognition");
        assert_eq!(
            m.attributes,
            vec![(4, "company".to_string()), (5, "Phone".to_string())]
        );
        let bad: MappingSpec = serde_json::from_str(r#"{"phones": ["Fax"]}"#).unwrap();
        assert!(
            Mapping::resolve(&hdr, Some(&bad))
                .unwrap_err()
                .to_string()
                .contains("Fax")
        );
        assert!(
            Mapping::resolve(&h(&["Name", "Email"]), None).is_err(),
            "no phone column"
        );
    }

    #[test]
    fn upload_mapping_text_json_or_toml_with_named_errors() {
        let hdr = h(&["Acct", "Work", "Cell", "Notes"]);
        let json =
            MappingSpec::parse(r#"{"auto": false, "phones": ["Cell"], "crm_id": "Acct"}"#).unwrap();
        let toml_spec =
            MappingSpec::parse("auto = false\nphones = [\"Cell\"]\ncrm_id = \"Acct\"\n").unwrap();
        assert_eq!(json, toml_spec);
        let m = Mapping::resolve(&hdr, Some(&json)).unwrap();
        assert_eq!((m.crm_id, m.phones.clone()), (Some(0), vec![2]));
        assert_eq!(
            m.attributes.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 3],
            "auto = false: Work stays an attribute"
        );
        let e = MappingSpec::parse(r#"{"phone": ["Cell"]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad JSON mapping") && e.contains("phone"), "{e}");
        let e = MappingSpec::parse("phones = Cell").unwrap_err().to_string();
        assert!(e.starts_with("bad TOML mapping"), "{e}");
        assert!(
            MappingSpec::parse("  ")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let twice = MappingSpec::parse(r#"{"phones": ["Cell"], "crm_id": "Cell"}"#).unwrap();
        let e = Mapping::resolve(&hdr, Some(&twice))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"Cell\"") && e.contains("crm_id") && e.contains("phones"),
            "{e}"
        );
    }
}
