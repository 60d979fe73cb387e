//! Hostile traffic (issue "Hostile traffic and tamper evidence"): floods, races and shared
//! addresses, driven from several loopback addresses (127.0.0.x) against a real server, on both
//! backends. Floods are bounded so the suite stays fast. One file per topic.

use super::*;

mod caps_and_decoys;
mod floods;
mod input;

/// A client whose connections come from `127.0.0.{last}`.
fn from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("client")
}

async fn password_attempt(base: &str, last: u8, user: &str, password: &str) -> u16 {
    from(last)
        .post(format!("{base}/api/v1/signin"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .expect("signin")
        .status()
        .as_u16()
}
