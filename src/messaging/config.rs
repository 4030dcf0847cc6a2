//! The `messaging` section of the program configuration (upstream's connected program).
//!
//! Field names and defaults follow upstream (`messages_db`, `message_send_interval`,
//! `max_messages`, `message_order`, `heartbeat_interval`, `http`, `mqtt`), with the
//! differences that matter in the field: when both `http` and `mqtt` are set BOTH receive
//! every message (upstream silently ignores MQTT); HTTP can authenticate; MQTT uses its
//! `timeout`, TLS and a keep-alive. Passwords and tokens are [`Secret`]s: written to the
//! config file as they are, printed as `********`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::store::outbox::Order;

/// What a [`Secret`] prints as.
pub const MASK: &str = "********";

/// A password or token. `Debug` and `Display` print `********`; `Serialize` writes the
/// real value, because saving the config must keep it. Output meant for people goes
/// through [`mask_secrets`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The real value, for the one place that sends it (authentication).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Field names holding a [`Secret`] anywhere in the configuration.
pub const SECRET_FIELDS: &[&str] = &["password", "bearer_token"];

/// Replaces every non-null value of a secret field (see [`SECRET_FIELDS`]) in a
/// serialized configuration by `********`, for `config get` and logs.
pub fn mask_secrets(value: &mut serde_json::Value) {
    replace_secrets(value, MASK);
}

/// Replaces every non-null value of a secret field in a serialized configuration by
/// `with` (e.g. a note saying where the real value is kept).
pub fn replace_secrets(value: &mut serde_json::Value, with: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) && !v.is_null() {
                    *v = serde_json::Value::String(with.to_owned());
                } else {
                    replace_secrets(v, with);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| replace_secrets(v, with)),
        _ => {}
    }
}

/// The messaging section. Absent from the config → no messaging and no heartbeat messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagingConfig {
    /// The outbox database; `None` → `messages.db` next to the metadata database.
    pub messages_db: Option<PathBuf>,
    /// Seconds between delivery runs.
    pub message_send_interval: u32,
    /// At most this many messages per run; `None` sends every due message.
    pub max_messages: Option<u32>,
    /// Which due messages go first.
    pub message_order: Order,
    /// Seconds between heartbeat messages.
    pub heartbeat_interval: u32,
    /// Seconds between summary messages; `None` sends none.
    pub summary_interval: Option<u32>,
    /// Delete delivered messages this many days after delivery; `None` keeps them.
    pub prune_after_days: Option<u32>,
    /// POST every message as JSON to an HTTP endpoint.
    pub http: Option<HttpConfig>,
    /// Publish every message to an MQTT broker.
    pub mqtt: Option<MqttConfig>,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            messages_db: None,
            message_send_interval: 120,
            max_messages: None,
            message_order: Order::OldestFirst,
            heartbeat_interval: 3600,
            summary_interval: None,
            prune_after_days: Some(30),
            http: None,
            mqtt: None,
        }
    }
}

impl MessagingConfig {
    /// The section with every optional field set (both messengers, every secret, every
    /// path): its shape, from which `acoupi config` learns each field's name and type
    /// where a configuration has `None`. Declared here, next to the fields, so a new
    /// field cannot be forgotten in the shape (a test in `config::tree` checks none is
    /// left unset).
    pub fn shape() -> MessagingConfig {
        let secret = || Some(Secret::new(""));
        MessagingConfig {
            messages_db: Some("messages.db".into()),
            max_messages: Some(1),
            summary_interval: Some(1),
            prune_after_days: Some(1),
            mqtt: Some(MqttConfig {
                username: Some(String::new()),
                password: secret(),
                ca_file: Some("ca.pem".into()),
                ..MqttConfig::new("")
            }),
            http: Some(HttpConfig {
                bearer_token: secret(),
                username: Some(String::new()),
                password: secret(),
                ca_file: Some("ca.pem".into()),
                ..HttpConfig::new("")
            }),
            ..MessagingConfig::default()
        }
    }
}

/// An HTTP endpoint. Each message is POSTed to `base_url`; 2xx is delivered, 408, 429
/// and 5xx are retried, other 4xx are permanent failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL messages are POSTed to (`http://` or `https://`).
    pub base_url: String,
    /// `Content-Type` of the requests.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Seconds a request may take, connection included.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    /// Sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// HTTP basic authentication user (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// HTTP basic authentication password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// PEM file of the CA(s) to trust; `None` trusts the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// An MQTT broker. Messages are published with QoS 1 to `topic` (or `topic/<kind>`);
/// `topic/status` holds a retained `online`, replaced by the retained last will
/// `offline` when the device vanishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (upstream's default, 1884; the IANA ports are 1883 and 8883 for TLS).
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// User name; `None` connects anonymously.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Base topic.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Publish each kind of message to `topic/<kind>` (`acoupi/heartbeat`, …) instead of `topic`.
    #[serde(default)]
    pub per_kind_subtopics: bool,
    /// Seconds to wait for the connection and for each acknowledgement.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    /// Connect over TLS.
    #[serde(default)]
    pub use_tls: bool,
    /// PEM file of the CA(s) to trust with TLS; `None` trusts the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds between keep-alive pings; the broker declares us gone after 1.5 times this.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u32,
}

impl HttpConfig {
    /// An endpoint at `base_url` with every other field at its default.
    pub fn new(base_url: impl Into<String>) -> HttpConfig {
        HttpConfig {
            base_url: base_url.into(),
            content_type: default_content_type(),
            timeout: default_timeout(),
            bearer_token: None,
            username: None,
            password: None,
            ca_file: None,
        }
    }
}

impl MqttConfig {
    /// A broker at `host` with every other field at its default.
    pub fn new(host: impl Into<String>) -> MqttConfig {
        MqttConfig {
            host: host.into(),
            port: default_mqtt_port(),
            username: None,
            password: None,
            topic: default_topic(),
            per_kind_subtopics: false,
            timeout: default_timeout(),
            use_tls: false,
            ca_file: None,
            keep_alive: default_keep_alive(),
        }
    }
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

fn default_timeout() -> u32 {
    5
}

fn default_mqtt_port() -> u16 {
    1884
}

fn default_topic() -> String {
    "acoupi".to_owned()
}

fn default_keep_alive() -> u32 {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_masked_but_serialize_real() {
        let cfg = MqttConfig {
            host: "broker".into(),
            port: 1883,
            username: Some("rec".into()),
            password: Some(Secret::new("hunter2")),
            topic: "acoupi".into(),
            per_kind_subtopics: false,
            timeout: 5,
            use_tls: false,
            ca_file: None,
            keep_alive: 60,
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let mut json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["password"], "hunter2");
        mask_secrets(&mut json);
        assert_eq!(json["password"], MASK);
        assert_eq!(json["username"], "rec");
    }

    #[test]
    fn upstream_defaults_apply_to_a_minimal_section() {
        let cfg: MessagingConfig =
            ron::from_str("(mqtt: Some((host: \"b\")), http: Some((base_url: \"http://x\")))")
                .unwrap();
        assert_eq!(cfg.message_send_interval, 120);
        assert_eq!(cfg.heartbeat_interval, 3600);
        assert_eq!(cfg.message_order, Order::OldestFirst);
        let mqtt = cfg.mqtt.unwrap();
        assert_eq!(
            (mqtt.port, mqtt.topic.as_str(), mqtt.timeout),
            (1884, "acoupi", 5)
        );
        assert_eq!(cfg.http.unwrap().content_type, "application/json");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = ron::from_str::<MessagingConfig>("(mqtt_host: \"b\")").unwrap_err();
        assert!(err.to_string().contains("mqtt_host"), "{err}");
    }
}
