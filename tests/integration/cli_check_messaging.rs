//! `acoupi check` names each way a messenger can fail to connect, in the exact line it
//! prints: the real binary in user mode against a real mosquitto (TLS listener with its
//! own CA) and a scripted HTTP(S) server (certificate from a test CA), both on loopback.
//! Host names under `.invalid` never resolve (RFC 6761), so the name-resolution cases
//! need no network.
//!
//! The wrong password and the closed port are covered in `connected_daemon.rs`.

use crate::connected_support;
use crate::messaging_support;
use crate::support;

use connected_support::{check_fails_with, check_passes, setup_connected};
use messaging_support::{Broker, HttpServer, Pki, Reply};
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

/// One HTTPS server (certificate signed by the test CA `ca.pem`), three trust settings:
/// the system store and an unrelated CA each refuse it and say which store did; the
/// right `ca_file` passes, and the check's request carries the bearer token.
#[test]
fn https_names_the_store_that_refused_the_certificate_and_the_right_ca_file_passes() {
    let pki = Pki::new();
    let server = HttpServer::start_tls(
        Reply::Status(200, ""),
        &pki.server_cert(),
        &pki.server_key(),
    );
    let home = connected(&[
        format!("messaging.http.base_url={}", server.url()),
        "messaging.http.bearer_token=tok-check".into(),
        "messaging.http.timeout=3".into(),
    ]);
    check_fails_with(
        &home,
        &format!(
            "error: http: tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in the system store signed it, set ca_file to the CA that did",
            server.port
        ),
    );

    home.ok(&[
        "config",
        "set",
        "messaging.http.ca_file",
        &pki.other_ca().display().to_string(),
    ]);
    check_fails_with(
        &home,
        &format!(
            "error: http: tls handshake with 127.0.0.1:{} failed: server certificate not accepted (UnknownIssuer): no CA in {} signed it, check ca_file",
            server.port,
            pki.other_ca().display()
        ),
    );
    assert!(server.received().is_empty(), "refused before any request");

    home.ok(&[
        "config",
        "set",
        "messaging.http.ca_file",
        &pki.ca().display().to_string(),
    ]);
    check_passes(&home);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("OPTIONS", "/messages")
    );
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-check"));
}
