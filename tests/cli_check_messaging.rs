//! `acoupi check` names each way a messenger can fail to connect, in the exact line it
//! prints: the real binary in user mode against a real mosquitto (TLS listener with its
//! own CA) and a scripted HTTP server, both on loopback. Host names under `.invalid`
//! never resolve (RFC 6761), so the name-resolution cases need no network.
//!
//! The wrong password and the closed port are covered in `connected_daemon.rs`.

mod connected_support;
mod messaging_support;
mod support;

use connected_support::{check_fails_with, check_passes, setup_connected};
use messaging_support::{Broker, HttpServer, Reply};
use support::Install;

/// An installation set up for the connected program with `messaging`; `check` reads its
/// microphone from a file.
fn connected(messaging: &[String]) -> Install {
    let install = Install::new();
    setup_connected(&install, messaging);
    install.mic_from_file();
    install
}

#[test]
fn mqtt_tls_with_a_wrong_ca_file_names_the_file_and_the_right_one_passes() {
    let broker = Broker::start();
    let home = connected(&[
        "messaging.mqtt.host=127.0.0.1".into(),
        format!("messaging.mqtt.port={}", broker.tls_port),
        "messaging.mqtt.use_tls=true".into(),
        format!("messaging.mqtt.ca_file={}", broker.other_ca().display()),
        "messaging.mqtt.timeout=3".into(),
    ]);
    check_fails_with(
        &home,
        &format!(
            "error: mqtt: tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in {} signed it, check ca_file",
            broker.tls_port,
            broker.other_ca().display()
        ),
    );

    home.ok(&[
        "config",
        "set",
        "messaging.mqtt.ca_file",
        &broker.ca().display().to_string(),
    ]);
    check_passes(&home);
}

#[test]
fn mqtt_host_that_does_not_resolve_is_a_name_resolution_failure() {
    let home = connected(&[
        "messaging.mqtt.host=no-such-broker.invalid".into(),
        "messaging.mqtt.timeout=3".into(),
    ]);
    check_fails_with(
        &home,
        "error: mqtt: name resolution failed for no-such-broker.invalid: check the host name and the DNS settings",
    );
}

#[test]
fn http_endpoint_answers_are_named_by_status() {
    let missing = HttpServer::start(Reply::Status(404, "no such page"));
    let home = connected(&[
        format!("messaging.http.base_url={}", missing.url()),
        "messaging.http.timeout=3".into(),
    ]);
    check_fails_with(
        &home,
        &format!(
            "error: http: {} rejected by the server: HTTP 404",
            missing.url()
        ),
    );

    let locked = HttpServer::start(Reply::Status(401, "who are you"));
    home.ok(&["config", "set", "messaging.http.base_url", &locked.url()]);
    check_fails_with(
        &home,
        &format!(
            "error: http: authentication rejected by {}: HTTP 401",
            locked.url()
        ),
    );

    let open = HttpServer::start(Reply::Status(200, ""));
    home.ok(&["config", "set", "messaging.http.base_url", &open.url()]);
    check_passes(&home);
    assert_eq!(open.received()[0].method, "OPTIONS");
}

#[test]
fn http_host_that_does_not_resolve_is_a_name_resolution_failure() {
    let home = connected(&[
        "messaging.http.base_url=http://no-such-host.invalid/messages".into(),
        "messaging.http.timeout=3".into(),
    ]);
    check_fails_with(
        &home,
        "error: http: name resolution failed for no-such-host.invalid: check the host name and the DNS settings",
    );
}

/// The handshake fails before any HTTP is spoken, so the broker's TLS listener serves as
/// the HTTPS peer: its certificate is signed by `ca.pem`, not by `other-ca.pem`.
#[test]
fn https_with_a_wrong_ca_file_names_the_file() {
    let broker = Broker::start();
    let home = connected(&[
        format!(
            "messaging.http.base_url=https://127.0.0.1:{}/messages",
            broker.tls_port
        ),
        format!("messaging.http.ca_file={}", broker.other_ca().display()),
        "messaging.http.timeout=3".into(),
    ]);
    check_fails_with(
        &home,
        &format!(
            "error: http: tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in {} signed it, check ca_file",
            broker.tls_port,
            broker.other_ca().display()
        ),
    );
}
