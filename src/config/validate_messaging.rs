//! Validation of the `messaging` section (the connected program): a messenger must be
//! configured, intervals have floors, URLs and hosts must be usable.
//!
//! Only checked when `program` is `connected`: under the default program the section is
//! ignored, so it can be prepared field by field before switching program. Like the rest
//! of validation this is pure: whether the broker answers is `acoupi check`'s business.

use crate::messaging::config::{HttpConfig, MessagingConfig, MqttConfig};

use super::schema::{Config, Program};
use super::validate::MIN_HEARTBEAT_S;

/// The shortest summary interval, in seconds (as for heartbeats: faster only wears the card).
pub const MIN_SUMMARY_S: u32 = MIN_HEARTBEAT_S;

/// Problems of the messaging section as `(dotted field, message)` pairs.
pub fn messaging_errors(config: &Config) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if config.program != Program::Connected {
        return errors;
    }
    let Some(m) = &config.messaging else {
        errors.push((
            "messaging".into(),
            "is required by program `connected`: set a broker or an endpoint, e.g. `acoupi config set messaging.mqtt.host <broker>` or `acoupi config set messaging.http.base_url <url>`".into(),
        ));
        return errors;
    };
    section_errors(m, &mut errors);
    errors
}

fn section_errors(m: &MessagingConfig, errors: &mut Vec<(String, String)>) {
    let mut push = |field: &str, message: String| errors.push((field.to_owned(), message));
    if m.mqtt.is_none() && m.http.is_none() {
        push(
            "messaging",
            "has neither `mqtt` nor `http`: set messaging.mqtt.host or messaging.http.base_url"
                .into(),
        );
    }
    if m.message_send_interval == 0 {
        push(
            "messaging.message_send_interval",
            "must be at least 1 second, got 0".into(),
        );
    }
    if m.max_messages == Some(0) {
        push(
            "messaging.max_messages",
            "must be at least 1, or none to send every due message".into(),
        );
    }
    if m.heartbeat_interval < MIN_HEARTBEAT_S {
        push(
            "messaging.heartbeat_interval",
            format!(
                "must be at least {MIN_HEARTBEAT_S} seconds, got {}",
                m.heartbeat_interval
            ),
        );
    }
    if let Some(s) = m.summary_interval.filter(|s| *s < MIN_SUMMARY_S) {
        push(
            "messaging.summary_interval",
            format!("must be at least {MIN_SUMMARY_S} seconds, or none for no summaries, got {s}"),
        );
    }
    if m.prune_after_days == Some(0) {
        push(
            "messaging.prune_after_days",
            "must be at least 1 day, or none to keep delivered messages".into(),
        );
    }
    if let Some(mqtt) = &m.mqtt {
        mqtt_errors(mqtt, &mut push);
    }
    if let Some(http) = &m.http {
        http_errors(http, &mut push);
    }
}

fn mqtt_errors(mqtt: &MqttConfig, push: &mut impl FnMut(&str, String)) {
    if mqtt.host.trim().is_empty() {
        push(
            "messaging.mqtt.host",
            "is not set: `acoupi config set messaging.mqtt.host <broker>`".into(),
        );
    }
    if mqtt.port == 0 {
        push("messaging.mqtt.port", "must be between 1 and 65535".into());
    }
    if mqtt.topic.trim().is_empty() || mqtt.topic.contains(['#', '+']) {
        push(
            "messaging.mqtt.topic",
            format!(
                "must be a topic name without wildcards (# or +), got {:?}",
                mqtt.topic
            ),
        );
    }
    if mqtt.password.is_some() && mqtt.username.is_none() {
        push(
            "messaging.mqtt.password",
            "is set without messaging.mqtt.username: set the user name too".into(),
        );
    }
    if mqtt.timeout == 0 {
        push(
            "messaging.mqtt.timeout",
            "must be at least 1 second, got 0".into(),
        );
    }
    if mqtt.keep_alive < 5 {
        push(
            "messaging.mqtt.keep_alive",
            format!("must be at least 5 seconds, got {}", mqtt.keep_alive),
        );
    }
    if mqtt.ca_file.is_some() && !mqtt.use_tls {
        push(
            "messaging.mqtt.ca_file",
            "is only used with TLS: set messaging.mqtt.use_tls true".into(),
        );
    }
}

fn http_errors(http: &HttpConfig, push: &mut impl FnMut(&str, String)) {
    let url = http.base_url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        push(
            "messaging.http.base_url",
            format!("must be an http:// or https:// URL with a host, got {url:?}"),
        );
    }
    if http.timeout == 0 {
        push(
            "messaging.http.timeout",
            "must be at least 1 second, got 0".into(),
        );
    }
    if http.bearer_token.is_some() && (http.username.is_some() || http.password.is_some()) {
        push(
            "messaging.http.bearer_token",
            "and basic authentication (username/password) exclude each other: keep one".into(),
        );
    }
    if http.password.is_some() && http.username.is_none() {
        push(
            "messaging.http.password",
            "is set without messaging.http.username: set the user name too".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::config::Secret;

    fn connected(messaging: Option<MessagingConfig>) -> Config {
        let mut c = Config::default();
        c.microphone.device_name = "USB".into();
        c.program = Program::Connected;
        c.messaging = messaging;
        c
    }

    fn fields(c: &Config) -> Vec<String> {
        messaging_errors(c).into_iter().map(|(f, _)| f).collect()
    }

    fn mqtt(host: &str) -> MqttConfig {
        ron::from_str(&format!("(host: {host:?})")).unwrap()
    }

    #[test]
    fn connected_without_messaging_names_the_section_and_the_fix() {
        let e = messaging_errors(&connected(None));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "messaging");
        assert!(e[0].1.contains("messaging.mqtt.host"), "{e:?}");
    }

    #[test]
    fn messaging_under_the_default_program_is_ignored() {
        let mut c = connected(Some(MessagingConfig::default()));
        c.program = Program::Default;
        assert!(messaging_errors(&c).is_empty());
    }

    #[test]
    fn section_needs_a_messenger_and_sane_values() {
        assert_eq!(
            fields(&connected(Some(MessagingConfig::default()))),
            ["messaging"]
        );
        let mut m = MessagingConfig {
            mqtt: Some(mqtt("")),
            heartbeat_interval: 5,
            summary_interval: Some(1),
            message_send_interval: 0,
            ..MessagingConfig::default()
        };
        m.http = Some(HttpConfig {
            base_url: "ftp://x".into(),
            content_type: "application/json".into(),
            timeout: 5,
            bearer_token: Some(Secret::new("t")),
            username: Some("u".into()),
            password: None,
            ca_file: None,
        });
        assert_eq!(
            fields(&connected(Some(m))),
            [
                "messaging.message_send_interval",
                "messaging.heartbeat_interval",
                "messaging.summary_interval",
                "messaging.mqtt.host",
                "messaging.http.base_url",
                "messaging.http.bearer_token",
            ]
        );
    }

    #[test]
    fn a_broker_host_is_enough() {
        let m = MessagingConfig {
            mqtt: Some(mqtt("broker.local")),
            ..MessagingConfig::default()
        };
        assert!(messaging_errors(&connected(Some(m))).is_empty());
    }
}
