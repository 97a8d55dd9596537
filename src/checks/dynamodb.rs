//! Signed DynamoDB calls per table: DescribeTable on the regional endpoint and on the
//! account-based endpoint (<account>.ddb.<region>...), and GetItem when --item-key names a key.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::calls::{CallSite, SdkClients, bounded};
use crate::report::CallResult;

pub struct TableCalls<'a> {
    pub clients: &'a SdkClients,
    pub table: &'a str,
    pub item_key: Option<&'a HashMap<String, ItemKeyValue>>,
    /// (endpoint URL, call site) of the regional endpoint (URL None: the SDK's own).
    pub regional: (Option<String>, CallSite),
    /// The account-based endpoint, when the account is known.
    pub account: Option<(String, CallSite)>,
    pub timeout: Duration,
}

/// A key attribute of --item-key (key attributes are only ever S, N or B).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKeyValue {
    S(String),
    N(String),
    B(Vec<u8>),
}

impl ItemKeyValue {
    fn to_attribute(&self) -> AttributeValue {
        match self {
            ItemKeyValue::S(s) => AttributeValue::S(s.clone()),
            ItemKeyValue::N(n) => AttributeValue::N(n.clone()),
            ItemKeyValue::B(b) => {
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.clone()))
            }
        }
    }
}

impl TableCalls<'_> {
    fn client(&self, endpoint_url: Option<&str>) -> aws_sdk_dynamodb::Client {
        self.clients.dynamodb(endpoint_url)
    }

    async fn describe(
        &self,
        endpoint_url: Option<&str>,
        site: &CallSite,
        operation: &str,
    ) -> CallResult {
        let client = self.client(endpoint_url);
        bounded(
            self.timeout * 3,
            site.run(
                operation,
                "dynamodb:DescribeTable",
                || client.describe_table().table_name(self.table).send(),
                |out| {
                    out.table()
                        .and_then(|t| t.table_status())
                        .map(|s| format!("table {}", s.as_str()))
                },
            ),
            site,
            operation,
            "dynamodb:DescribeTable",
        )
        .await
    }

    pub async fn run(&self) -> Vec<CallResult> {
        let (regional_url, regional_site) = &self.regional;
        let regional = self.describe(regional_url.as_deref(), regional_site, "DescribeTable");
        let account = async {
            match &self.account {
                Some((url, site)) => Some(
                    self.describe(Some(url), site, "DescribeTable (account endpoint)")
                        .await,
                ),
                None => None,
            }
        };
        let get_item = async {
            let key = self.item_key?;
            let client = self.client(regional_url.as_deref());
            let key: HashMap<String, AttributeValue> = key
                .iter()
                .map(|(k, v)| (k.clone(), v.to_attribute()))
                .collect();
            Some(
                bounded(
                    self.timeout * 3,
                    regional_site.run(
                        "GetItem",
                        "dynamodb:GetItem",
                        || {
                            client
                                .get_item()
                                .table_name(self.table)
                                .set_key(Some(key))
                                .send()
                        },
                        |out| {
                            Some(if out.item().is_some() {
                                "item found".to_string()
                            } else {
                                "no item with this key".to_string()
                            })
                        },
                    ),
                    regional_site,
                    "GetItem",
                    "dynamodb:GetItem",
                )
                .await,
            )
        };
        let (regional, account, get_item) = tokio::join!(regional, account, get_item);
        let mut out = vec![regional];
        out.extend(account);
        out.extend(get_item);
        out
    }
}

/// Parse --item-key: DynamoDB JSON of key attributes, e.g. {"pk":{"S":"a"},"sk":{"N":"1"}}.
pub fn parse_item_key(raw: &str) -> Result<HashMap<String, ItemKeyValue>, String> {
    use crate::escape::shown;
    use base64::Engine;
    let bad = |why: String| {
        Err(format!(
            "--item-key '{}': {why}; expected DynamoDB JSON such as '{{\"pk\":{{\"S\":\"id-1\"}}}}'",
            shown(raw)
        ))
    };
    let value: serde_json::Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(e) => return bad(format!("not JSON ({})", shown(&e.to_string()))),
    };
    let Some(map) = value.as_object().filter(|m| !m.is_empty() && m.len() <= 2) else {
        return bad("a key has one or two attributes".into());
    };
    let mut out = HashMap::new();
    for (name, typed) in map {
        let Some((kind, v)) = typed
            .as_object()
            .filter(|t| t.len() == 1)
            .and_then(|t| t.iter().next())
        else {
            return bad(format!(
                "attribute '{}' must be {{\"S\"|\"N\"|\"B\": value}}",
                shown(name)
            ));
        };
        let Some(text) = v.as_str() else {
            return bad(format!(
                "attribute '{}': the value is a JSON string",
                shown(name)
            ));
        };
        let parsed = match kind.as_str() {
            "S" => ItemKeyValue::S(text.into()),
            "N" if text.parse::<f64>().is_ok() => ItemKeyValue::N(text.into()),
            "N" => {
                return bad(format!(
                    "attribute '{}': '{}' is not a number",
                    shown(name),
                    shown(text)
                ));
            }
            "B" => match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(b) => ItemKeyValue::B(b),
                Err(_) => {
                    return bad(format!("attribute '{}': B values are base64", shown(name)));
                }
            },
            other => {
                return bad(format!(
                    "attribute '{}': key attributes are S, N or B, not {}",
                    shown(name),
                    shown(other)
                ));
            }
        };
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys() {
        let k = parse_item_key(r#"{"pk":{"S":"a"},"sk":{"N":"12"}}"#).unwrap();
        assert_eq!(k["pk"], ItemKeyValue::S("a".into()));
        assert_eq!(k["sk"], ItemKeyValue::N("12".into()));
        assert_eq!(
            parse_item_key(r#"{"b":{"B":"AQI="}}"#).unwrap()["b"],
            ItemKeyValue::B(vec![1, 2])
        );
        for (bad, want) in [
            ("pk=a", "not JSON"),
            ("{}", "one or two"),
            (r#"{"pk":"a"}"#, "must be"),
            (r#"{"pk":{"N":"x"}}"#, "not a number"),
            (r#"{"pk":{"M":"x"}}"#, "not M"),
            (r#"{"pk":{"S":1}}"#, "JSON string"),
        ] {
            let e = parse_item_key(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
