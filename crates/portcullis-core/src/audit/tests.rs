//! Tests of the audit chain: edits to the hash chain, the checkpoint chain, the cadence rules
//! and anchors.

use super::*;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::HashMap;
use time::OffsetDateTime;

fn chain(n: i64) -> Vec<AuditEvent> {
    let mut prev = GENESIS_HASH;
    let mut out = Vec::new();
    for seq in 1..=n {
        let e = NewAuditEvent::new("system", "test.event", format!("t{seq}"))
            .details(serde_json::json!({"n": seq, "b": "x", "a": [1, 2]}))
            .seal(
                seq,
                OffsetDateTime::from_unix_timestamp(1_700_000_000 + seq).expect("time"),
                prev,
            );
        prev = e.hash;
        out.push(e);
    }
    out
}

fn key() -> (SigningKey, HashMap<String, VerifyingKey>) {
    let k = SigningKey::from_bytes(&[7u8; 32]);
    let mut m = HashMap::new();
    m.insert("k1".to_owned(), k.verifying_key());
    (k, m)
}

#[test]
fn intact_chain_verifies() {
    let (k, keys) = key();
    let events = chain(10);
    let cp = Checkpoint::sign_legacy(5, events[4].hash, "k1", &k);
    let report = verify_chain(&events, &[cp], &keys).expect("verifies");
    assert_eq!(report.last_seq, 10);
    assert_eq!(report.checkpoints, 1);
}

#[test]
fn canonical_form_is_independent_of_key_order() {
    let a = NewAuditEvent::new("a", "b", "c")
        .details(serde_json::from_str(r#"{"z":1,"a":2}"#).expect("json"))
        .seal(1, OffsetDateTime::UNIX_EPOCH, GENESIS_HASH);
    let b = NewAuditEvent::new("a", "b", "c")
        .details(serde_json::from_str(r#"{"a":2,"z":1}"#).expect("json"))
        .seal(1, OffsetDateTime::UNIX_EPOCH, GENESIS_HASH);
    assert_eq!(a.hash, b.hash);
}

#[test]
fn edited_field_is_found() {
    let (_, keys) = key();
    let mut events = chain(10);
    events[3].target = "edited".into();
    assert_eq!(
        verify_chain(&events, &[], &keys),
        Err(ChainFault::HashMismatch { seq: 4 })
    );
}

#[test]
fn edited_field_with_recomputed_hash_breaks_next_link() {
    let (_, keys) = key();
    let mut events = chain(10);
    events[3].outcome = Outcome::Failure;
    events[3].hash = events[3].compute_hash();
    assert_eq!(
        verify_chain(&events, &[], &keys),
        Err(ChainFault::BrokenLink { seq: 5 })
    );
}

#[test]
fn deleted_row_is_found() {
    let (_, keys) = key();
    let mut events = chain(10);
    events.remove(6);
    let err = verify_chain(&events, &[], &keys).expect_err("must fail");
    assert_eq!(err.seq(), 7);
}

#[test]
fn swapped_rows_are_found() {
    let (_, keys) = key();
    let mut events = chain(10);
    events.swap(2, 3);
    let err = verify_chain(&events, &[], &keys).expect_err("must fail");
    assert_eq!(err.seq(), 3);
}

#[test]
fn truncated_tail_is_found_by_checkpoint() {
    let (k, keys) = key();
    let events = chain(10);
    let cp = Checkpoint::sign_legacy(10, events[9].hash, "k1", &k);
    let err = verify_chain(&events[..8], &[cp], &keys).expect_err("must fail");
    assert_eq!(err.seq(), 9);
}

#[test]
fn rewritten_chain_disagrees_with_checkpoint() {
    let (k, keys) = key();
    let events = chain(10);
    let cp = Checkpoint::sign_legacy(10, events[9].hash, "k1", &k);
    // An attacker rewrites the whole chain consistently from seq 3 on.
    let mut forged = events.clone();
    forged[2].actor = "mallory".into();
    let mut prev = forged[1].hash;
    for e in forged.iter_mut().skip(2) {
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
    }
    assert_eq!(
        verify_chain(&forged, &[cp], &keys),
        Err(ChainFault::CheckpointMismatch { seq: 10 })
    );
}

#[test]
fn forged_checkpoint_signature_is_found() {
    let (_, keys) = key();
    let events = chain(3);
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let cp = Checkpoint::sign_legacy(3, events[2].hash, "k1", &other);
    assert_eq!(
        verify_chain(&events, &[cp], &keys),
        Err(ChainFault::BadCheckpointSignature { seq: 3 })
    );
}

// ---- chained checkpoints, cadence rules and anchors

const CADENCE: CheckpointCadence = CheckpointCadence {
    events: 10,
    seconds: 60,
};

/// Chained checkpoints at `seqs` over `events`, made at the event's time.
fn chained(events: &[AuditEvent], seqs: &[i64], k: &SigningKey) -> Vec<Checkpoint> {
    chained_after(None, events, seqs, k)
}

fn chained_after(
    prev: Option<Checkpoint>,
    events: &[AuditEvent],
    seqs: &[i64],
    k: &SigningKey,
) -> Vec<Checkpoint> {
    let mut prev = prev;
    let mut out = Vec::new();
    for &seq in seqs {
        let e = &events[(seq - 1) as usize];
        let link = CheckpointLink::after(prev.as_ref(), e.time_us, CADENCE);
        let cp = Checkpoint::sign(seq, e.hash, link, "k1", k);
        prev = Some(cp.clone());
        out.push(cp);
    }
    out
}

fn verify(
    events: &[AuditEvent],
    cps: &[Checkpoint],
    keys: &HashMap<String, VerifyingKey>,
    anchors: &[Checkpoint],
) -> Verification {
    verify_chain_with(events, cps, keys, CADENCE, anchors)
}

/// A chain whose events are `gaps[i]` seconds apart.
fn chain_with_gaps(gaps: &[i64]) -> Vec<AuditEvent> {
    let mut prev = GENESIS_HASH;
    let mut t = 1_700_000_000;
    let mut out = Vec::new();
    for (i, gap) in gaps.iter().enumerate() {
        t += gap;
        let e = NewAuditEvent::new("system", "test.event", "t").seal(
            i as i64 + 1,
            OffsetDateTime::from_unix_timestamp(t).expect("time"),
            prev,
        );
        prev = e.hash;
        out.push(e);
    }
    out
}

#[test]
fn chained_checkpoints_verify() {
    let (k, keys) = key();
    let events = chain(30);
    let cps = chained(&events, &[10, 20, 30], &k);
    let v = verify(&events, &cps, &keys, &[]);
    assert_eq!(v.fault, None);
    assert_eq!(v.report.checkpoints, 3);
    assert_eq!(v.report.last_checkpoint_seq, Some(30));
    assert_eq!(v.report.events_after_last_checkpoint, 0);
    assert_eq!(cps[0].link.map(|l| l.prev_seq), Some(0));
    assert_eq!(
        cps[0].link.map(|l| l.prev_digest),
        Some(GENESIS_CHECKPOINT_DIGEST)
    );
}

#[test]
fn deleted_middle_checkpoint_is_a_gap() {
    let (k, keys) = key();
    let events = chain(30);
    let mut cps = chained(&events, &[10, 20, 30], &k);
    cps.remove(1);
    let f = verify(&events, &cps, &keys, &[]).fault.expect("gap");
    assert_eq!(
        f,
        ChainFault::CheckpointGap {
            seq: 30,
            missing_seq: 20
        }
    );
    assert_eq!(f.seq(), 20);
    assert_eq!(f.code(), "checkpoint_gap");
}

#[test]
fn deleted_first_checkpoint_is_a_gap() {
    let (k, keys) = key();
    let events = chain(30);
    let mut cps = chained(&events, &[10, 20], &k);
    cps.remove(0);
    assert_eq!(
        verify(&events, &cps, &keys, &[]).fault,
        Some(ChainFault::CheckpointGap {
            seq: 20,
            missing_seq: 10
        })
    );
}

#[test]
fn edited_chained_checkpoint_fails_its_signature() {
    let (k, keys) = key();
    let events = chain(30);
    for edit in 0..4 {
        let mut cps = chained(&events, &[10, 20], &k);
        let link = cps[1].link.as_mut().expect("chained");
        match edit {
            0 => link.created_at_us += 1,
            1 => link.cadence.events = 1_000_000,
            2 => link.prev_digest[0] ^= 1,
            _ => cps[1].key_id = "k2".into(),
        }
        assert_eq!(
            verify(&events, &cps, &keys, &[]).fault,
            Some(ChainFault::BadCheckpointSignature { seq: 20 }),
            "edit {edit}"
        );
    }
}

#[test]
fn a_signed_checkpoint_with_a_wrong_link_is_found() {
    let (k, keys) = key();
    let events = chain(30);
    let mut cps = chained(&events, &[10], &k);
    // Signed by the right key, but linking to a checkpoint 10 that is not this one.
    let wrong = CheckpointLink {
        prev_seq: 10,
        prev_digest: [7u8; 32],
        created_at_us: events[19].time_us,
        cadence: CADENCE,
    };
    cps.push(Checkpoint::sign(20, events[19].hash, wrong, "k1", &k));
    assert_eq!(
        verify(&events, &cps, &keys, &[]).fault,
        Some(ChainFault::CheckpointLinkBroken { seq: 20 })
    );
    // Linking back past an existing checkpoint (one inserted between them) too.
    let mut cps = chained(&events, &[10], &k);
    cps.extend(chained(&events, &[20], &k)); // links to genesis, skipping 10
    assert_eq!(
        verify(&events, &cps, &keys, &[]).fault,
        Some(ChainFault::CheckpointLinkBroken { seq: 20 })
    );
}

#[test]
fn legacy_checkpoints_verify_as_a_prefix() {
    let (k, keys) = key();
    let events = chain(30);
    let legacy = [
        Checkpoint::sign_legacy(5, events[4].hash, "k1", &k),
        Checkpoint::sign_legacy(10, events[9].hash, "k1", &k),
    ];
    let chained = chained_after(Some(legacy[1].clone()), &events, &[20, 30], &k);
    let all: Vec<Checkpoint> = legacy.iter().chain(chained.iter()).cloned().collect();
    let v = verify(&events, &all, &keys, &[]);
    assert_eq!(v.fault, None);
    assert_eq!(v.report.legacy_checkpoints, 2);
    assert_eq!(v.report.checkpoints, 4);

    // Deleting the last legacy checkpoint (or all of them) is found by the first link.
    let without_last: Vec<Checkpoint> = all.iter().filter(|c| c.seq != 10).cloned().collect();
    assert_eq!(
        verify(&events, &without_last, &keys, &[]).fault,
        Some(ChainFault::CheckpointGap {
            seq: 20,
            missing_seq: 10
        })
    );
    let no_legacy: Vec<Checkpoint> = chained.clone();
    assert_eq!(
        verify(&events, &no_legacy, &keys, &[])
            .fault
            .map(|f| f.seq()),
        Some(10)
    );
    // A legacy checkpoint after a chained one is refused.
    let mut late = all.clone();
    late.push(Checkpoint::sign_legacy(30, events[29].hash, "k1", &k));
    late.retain(|c| c.seq != 30 || c.is_legacy());
    assert_eq!(
        verify(&events, &late, &keys, &[]).fault,
        Some(ChainFault::UnlinkedCheckpoint { seq: 30 })
    );
}

#[test]
fn events_with_no_checkpoint_at_all_are_broken() {
    let (_, keys) = key();
    let events = chain(5);
    let f = verify(&events, &[], &keys, &[]).fault.expect("uncovered");
    assert_eq!(f, ChainFault::NoCheckpoint { events: 5 });
    assert_eq!((f.seq(), f.code()), (2, "no_checkpoint"));
    // `tenant.initialised` alone (written before the key exists) is fine.
    assert_eq!(verify(&events[..1], &[], &keys, &[]).fault, None);
    // A concrete edit is still named first.
    let mut edited = events.clone();
    edited[3].actor = "mallory".into();
    assert_eq!(
        verify(&edited, &[], &keys, &[]).fault,
        Some(ChainFault::HashMismatch { seq: 4 })
    );
}

#[test]
fn too_many_events_after_the_last_checkpoint() {
    let (k, keys) = key();
    let events = chain(150);
    let cps = chained(&events, &[10, 20], &k);
    let f = verify(&events, &cps, &keys, &[]).fault.expect("uncovered");
    assert_eq!(
        f,
        ChainFault::TooManyUncheckpointedEvents {
            checkpoint_seq: 20,
            allowed: 110
        }
    );
    assert_eq!(f.seq(), 131);
}

#[test]
fn the_last_checkpoints_cadence_judges_the_tail() {
    let (k, keys) = key();
    let events = chain(150);
    let mut prev = None;
    let mut cps = Vec::new();
    for seq in [10, 20] {
        let e = &events[seq as usize - 1];
        let cadence = CheckpointCadence {
            events: 500,
            seconds: 600,
        };
        let cp = Checkpoint::sign(
            seq,
            e.hash,
            CheckpointLink::after(prev.as_ref(), e.time_us, cadence),
            "k1",
            &k,
        );
        prev = Some(cp.clone());
        cps.push(cp);
    }
    // 130 events after it: more than the verifier's default (10 + 100), within the
    // recorded 500 + 100.
    assert_eq!(verify(&events, &cps, &keys, &[]).fault, None);
}

#[test]
fn events_after_the_last_checkpoint_spanning_too_long() {
    let (k, keys) = key();
    let events = chain_with_gaps(&[1; 100]);
    let cps = chained(&events, &[5], &k);
    // Allowed: 2 × 60 + 60 = 180 s; the tail starts at seq 6, one second apart.
    let short = &events[..100];
    assert_eq!(verify(short, &cps, &keys, &[]).fault, None);
    let mut gaps = vec![1; 100];
    gaps[60] = 200;
    let events = chain_with_gaps(&gaps);
    let cps = chained(&events, &[5], &k);
    let f = verify(&events, &cps, &keys, &[]).fault.expect("too long");
    assert_eq!(
        f,
        ChainFault::UncheckpointedTooLong {
            checkpoint_seq: 5,
            seq: 61,
            allowed_seconds: 180
        }
    );
}

#[test]
fn an_idle_gap_before_the_tail_does_not_count() {
    let (k, keys) = key();
    // A day of silence after the checkpoint at 5, then a short burst: a stopped or idle
    // tenant that came back.
    let mut gaps = vec![1; 20];
    gaps[5] = 86_400;
    let events = chain_with_gaps(&gaps);
    let cps = chained(&events, &[5], &k);
    assert_eq!(verify(&events, &cps, &keys, &[]).fault, None);
}

#[test]
fn truncation_to_a_checkpoint_is_caught_only_by_the_anchor() {
    let (k, keys) = key();
    let events = chain(30);
    let cps = chained(&events, &[10, 20, 30], &k);
    let anchored = vec![cps[2].clone()];
    assert_eq!(
        verify(&events, &cps, &keys, &anchored)
            .report
            .anchors_matched,
        1
    );
    // Delete the newest checkpoint and every event after the remaining last one.
    let truncated_events = &events[..20];
    let truncated_cps = &cps[..2];
    // Without the anchor the shorter chain is a tenant that stopped at 20.
    assert_eq!(
        verify(truncated_events, truncated_cps, &keys, &[]).fault,
        None
    );
    let f = verify(truncated_events, truncated_cps, &keys, &anchored)
        .fault
        .expect("anchored");
    assert_eq!(
        f,
        ChainFault::AnchoredCheckpointMissing {
            seq: 30,
            last_seq: 20
        }
    );
    assert_eq!(f.seq(), 21);
}

#[test]
fn a_rewritten_checkpoint_disagrees_with_its_anchor() {
    let (k, keys) = key();
    let events = chain(30);
    let cps = chained(&events, &[10, 20], &k);
    // Someone holding the key re-signs checkpoint 20 with another time: the digest moves.
    let mut other = chained(&events, &[10, 20], &k);
    let link = CheckpointLink::after(Some(&other[0]), events[19].time_us + 5, CADENCE);
    other[1] = Checkpoint::sign(20, events[19].hash, link, "k1", &k);
    assert_eq!(
        verify(&events, &other, &keys, &[cps[1].clone()]).fault,
        Some(ChainFault::AnchorMismatch { seq: 20 })
    );
}

#[test]
fn anchor_records_round_trip_and_refuse_edits() {
    let (k, _) = key();
    let events = chain(30);
    let cps = chained(&events, &[10, 20], &k);
    let lines: Vec<String> = cps
        .iter()
        .map(|c| serde_json::to_string(&AnchorRecord::of(c).expect("chained")).expect("json"))
        .collect();
    let text = format!("{}\n\n{}\n", lines[0], lines[1]);
    assert_eq!(parse_anchor_lines(&text).expect("parses").anchors, cps);
    // A torn line (a crash mid-append, finished by the next append) is skipped…
    let torn = format!("{}\n{}\n{}", &lines[1][..40], lines[0], lines[1]);
    let parsed = parse_anchor_lines(&torn).expect("parses");
    assert_eq!(parsed.anchors, cps);
    assert_eq!(parsed.torn_lines, 1);
    // …but not a line that is not a record at all, nor an edited record.
    assert_eq!(
        parse_anchor_lines("seq=20 hash=ab\n"),
        Err(AnchorError::NotARecord { line: 1 })
    );
    assert_eq!(
        parse_anchor_lines("{\"seq\": 20}\n"),
        Err(AnchorError::NotARecord { line: 1 })
    );
    let edited = lines[1].replace("\"seq\":20", "\"seq\":21");
    assert_eq!(
        parse_anchor_lines(&format!("{edited}\n")),
        Err(AnchorError::DigestMismatch { line: 1 })
    );
    assert!(AnchorRecord::of(&Checkpoint::sign_legacy(1, events[0].hash, "k1", &k)).is_none());
}

proptest::proptest! {
    /// Any chain of checkpoints verifies; deleting any one but the newest is a gap at
    /// exactly that checkpoint; flipping any bit of any checkpoint is found.
    #[test]
    fn checkpoint_chain_finds_every_deletion_and_edit(
        positions in proptest::collection::btree_set(1i64..=60, 2..12),
        victim in 0usize..64,
        bit in 0usize..(8 * 32),
        field in 0u8..4,
    ) {
        let (k, keys) = key();
        let events = chain(60);
        let seqs: Vec<i64> = positions.into_iter().collect();
        let cps = chained(&events, &seqs, &k);
        proptest::prop_assert_eq!(verify(&events, &cps, &keys, &[]).fault, None);

        let i = victim % (cps.len() - 1);
        let mut deleted = cps.clone();
        let gone = deleted.remove(i);
        proptest::prop_assert_eq!(
            verify(&events, &deleted, &keys, &[]).fault.map(|f| f.seq()),
            Some(gone.seq)
        );

        let j = victim % cps.len();
        let mut edited = cps.clone();
        let c = &mut edited[j];
        match field {
            0 => c.hash[bit / 8] ^= 1 << (bit % 8),
            1 => c.signature[bit / 8] ^= 1 << (bit % 8),
            2 => if let Some(l) = c.link.as_mut() { l.prev_digest[bit / 8] ^= 1 << (bit % 8) },
            _ => if let Some(l) = c.link.as_mut() { l.created_at_us ^= 1 << (bit % 63) },
        }
        proptest::prop_assert!(verify(&events, &edited, &keys, &[]).fault.is_some());
        // And every intact checkpoint matches its own anchor record.
        proptest::prop_assert!(
            verify(&events, &cps, &keys, &[cps[j].clone()]).fault.is_none()
        );
    }
}
