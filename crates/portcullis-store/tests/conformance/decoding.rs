//! Rows a database writer edited to a value this version does not know: refused as the fault
//! they are, never read as some default (a session's strength is what step-up and conditional
//! access judge).

use super::sweep::{now_us, session, sweep_user};
use super::*;

async fn a_session_with_an_unknown_strength_is_refused(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    session(&store, "s-1", "u-1", now).await;
    let (s, _) = store
        .session_by_token_hash(b"session-s-1")
        .await
        .expect("read")
        .expect("the session");
    assert_eq!(s.strength, portcullis_core::session::AuthStrength::Mfa);
    db.exec("UPDATE sessions SET strength = 'phishing_resistant_plus' WHERE id = 's-1'")
        .await;
    assert!(
        store.session_by_token_hash(b"session-s-1").await.is_err(),
        "an unknown strength is a fault, not a session"
    );
}

conformance!(a_session_with_an_unknown_strength_is_refused);
