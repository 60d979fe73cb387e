//! Tests of break-glass splitting: generation, any-threshold rebuilds, and every wrong, altered
//! or foreign share refused.

use super::*;
use crate::principal::PrincipalName;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn name(s: &str) -> PrincipalName {
    PrincipalName::parse("name", s).expect("valid name")
}

fn custodians(n: usize) -> Custodians {
    Custodians::parse((0..n).map(|i| format!("custodian.{i}"))).expect("valid custodians")
}

fn setup(n: usize, t: usize, seed: u64) -> (PrincipalName, Zeroizing<String>, Vec<Share>) {
    let mut r = rng(seed);
    let account = name("bg.one");
    let password = generate_password(&mut r);
    let cs = custodians(n);
    let th = Threshold::new(t, &cs, t == 1).expect("valid threshold");
    let (_, shares) = split(&account, &password, &cs, th, &mut r).expect("split");
    (account, password, shares)
}

fn roundtrip(s: &Share) -> Share {
    Share::parse(&s.encode()).expect("parses")
}

#[test]
fn password_is_long_and_unambiguous() {
    let mut r = rng(1);
    let a = generate_password(&mut r);
    let b = generate_password(&mut r);
    assert!(a.chars().count() >= 100);
    assert_eq!(a.len(), PASSWORD_LEN);
    assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    assert!(!a.contains(['0', 'O', 'o', '1', 'l', 'I']));
    assert_ne!(*a, *b);
    // Uses most of the alphabet (a biased or stuck generator would not).
    let distinct: std::collections::BTreeSet<char> = a.chars().chain(b.chars()).collect();
    assert!(distinct.len() > 40, "{}", distinct.len());
}

#[test]
fn alphabet_is_unique_and_entropy_holds() {
    let set: std::collections::BTreeSet<u8> = ALPHABET.iter().copied().collect();
    assert_eq!(set.len(), ALPHABET.len());
    assert!(PASSWORD_LEN as f64 * (ALPHABET.len() as f64).log2() > 550.0);
}

#[test]
fn any_three_of_five_rebuild() {
    let (account, password, shares) = setup(5, 3, 2);
    let mut count = 0;
    for mask in 0u32..32 {
        let subset: Vec<Share> = (0..5)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| roundtrip(&shares[i]))
            .collect();
        let got = combine(&account, &subset);
        if subset.len() >= 3 {
            assert_eq!(
                got.expect("rebuilds").as_str(),
                password.as_str(),
                "{mask:b}"
            );
            count += 1;
        } else if subset.is_empty() {
            assert_eq!(got, Err(CombineError::NoShares));
        } else {
            assert_eq!(
                got,
                Err(CombineError::NotEnough {
                    given: subset.len(),
                    needed: 3
                })
            );
        }
    }
    assert_eq!(count, 10 + 5 + 1);
}

#[test]
fn fewer_than_threshold_are_refused_and_would_not_open() {
    let (account, _, shares) = setup(4, 3, 3);
    assert_eq!(
        combine(&account, &shares[..2]),
        Err(CombineError::NotEnough {
            given: 2,
            needed: 3
        })
    );
    // Lying about the threshold does not help: two shares interpolate a wrong key.
    let lied: Vec<Share> = shares[..2]
        .iter()
        .map(|s| Share {
            threshold: 2,
            ..s.clone()
        })
        .collect();
    assert_eq!(combine(&account, &lied), Err(CombineError::WrongShares));
}

#[test]
fn share_of_another_account_is_refused() {
    let (account, _, shares) = setup(3, 2, 4);
    let (_, _, others) = {
        let mut r = rng(5);
        let other = name("bg.two");
        let cs = custodians(3);
        let th = Threshold::new(2, &cs, false).expect("threshold");
        let (s, sh) = split(&other, "secret", &cs, th, &mut r).expect("split");
        (other, s, sh)
    };
    let err = combine(&account, &[shares[0].clone(), others[1].clone()]).expect_err("refused");
    assert_eq!(
        err,
        CombineError::OtherAccount {
            expected: name("bg.one"),
            found: name("bg.two"),
            custodian: name("custodian.1"),
        }
    );
    assert!(err.to_string().contains("bg.two"), "{err}");
    // Relabelled to the right account: the account is in the AEAD's associated data.
    let relabelled: Vec<Share> = others[..2]
        .iter()
        .map(|s| Share {
            account: account.clone(),
            ..s.clone()
        })
        .collect();
    let relabelled: Vec<Share> = relabelled.iter().map(roundtrip).collect();
    assert_eq!(
        combine(&account, &relabelled),
        Err(CombineError::WrongShares)
    );
}

#[test]
fn corrupted_share_is_refused_by_checksum() {
    let (_, _, shares) = setup(3, 2, 6);
    let text = shares[0].encode();
    // Flip one character in every position of the payload part (after "pcbg1:").
    for pos in SHARE_PREFIX.len() + 1..text.len() {
        let mut bytes = text.as_bytes().to_vec();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bytes).expect("ascii");
        let err = Share::parse(&bad).expect_err("corrupted");
        assert_eq!(err, ShareError::Corrupted, "position {pos}");
    }
    let mut bytes = text.as_bytes().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'x' { b'y' } else { b'x' };
    let bad = String::from_utf8(bytes).expect("ascii");
    assert_eq!(Share::parse(&bad), Err(ShareError::Corrupted));
    assert!(
        Share::parse(&bad)
            .expect_err("x")
            .to_string()
            .contains("corrupted")
    );
    assert_eq!(Share::parse("hello"), Err(ShareError::NotAShare));
    assert_eq!(
        Share::parse(&text[..text.len() - 3]),
        Err(ShareError::Corrupted)
    );
    assert_eq!(
        Share::parse(&format!("  {}\n", text.as_str())),
        Ok(shares[0].clone())
    );
}

#[test]
fn altered_share_with_valid_checksum_fails_loudly() {
    let (account, _, shares) = setup(5, 3, 7);
    let mut altered = shares[1].clone();
    altered.value[5] ^= 0x01;
    let altered = roundtrip(&altered); // checksum recomputed: it parses
    assert_eq!(
        combine(
            &account,
            &[shares[0].clone(), altered.clone(), shares[2].clone()]
        ),
        Err(CombineError::WrongShares)
    );
    // A wrong share is not outvoted by extra good ones either.
    assert_eq!(
        combine(
            &account,
            &[
                shares[0].clone(),
                altered,
                shares[2].clone(),
                shares[3].clone()
            ]
        ),
        Err(CombineError::WrongShares)
    );
}

#[test]
fn duplicates_and_mixed_splits_are_refused() {
    let (account, _, shares) = setup(3, 2, 8);
    assert_eq!(
        combine(&account, &[shares[0].clone(), shares[0].clone()]),
        Err(CombineError::DuplicateCustodian(name("custodian.0")))
    );
    let renamed = Share {
        custodian: name("mallory"),
        ..shares[0].clone()
    };
    assert_eq!(
        combine(&account, &[shares[0].clone(), renamed]),
        Err(CombineError::DuplicateIndex(1))
    );
    let (_, _, again) = setup(3, 2, 9); // same account and custodians, new split
    assert_eq!(
        combine(&account, &[shares[0].clone(), again[1].clone()]),
        Err(CombineError::DifferentSplits)
    );
}

#[test]
fn custodian_rules() {
    assert_eq!(
        Custodians::parse(["alice", "bob", "alice"]),
        Err(CustodianError::Duplicate(name("alice")))
    );
    assert_eq!(Custodians::parse(["alice"]), Err(CustodianError::TooFew(1)));
    assert_eq!(
        Custodians::parse((0..17).map(|i| format!("c{i}"))),
        Err(CustodianError::TooMany(17))
    );
    assert!(matches!(
        Custodians::parse(["alice", "Bob"]),
        Err(CustodianError::Name { ref name, .. }) if name == "Bob"
    ));
    assert!(matches!(
        Custodians::parse(["alice", "b:c"]),
        Err(CustodianError::Name { .. })
    ));
    assert_eq!(custodians(16).len(), 16);
}

#[test]
fn threshold_rules() {
    let cs = custodians(3);
    assert_eq!(Threshold::new(0, &cs, true), Err(ThresholdError::Zero));
    assert_eq!(
        Threshold::new(4, &cs, true),
        Err(ThresholdError::LargerThanCustodians {
            threshold: 4,
            custodians: 3
        })
    );
    assert_eq!(
        Threshold::new(1, &cs, false),
        Err(ThresholdError::OneOfMany { custodians: 3 })
    );
    assert_eq!(Threshold::new(1, &cs, true).map(Threshold::get), Ok(1));
    assert_eq!(Threshold::new(3, &cs, false).map(Threshold::get), Ok(3));
    assert_eq!(Threshold::new(2, &cs, false).map(Threshold::get), Ok(2));
    let th = Threshold::new(2, &cs, false).expect("threshold");
    assert_eq!(
        split(&name("bg"), "pw", &custodians(4), th, &mut rng(0)).map(|_| ()),
        Err(SplitError::ThresholdMismatch {
            checked: 3,
            given: 4
        })
    );
}

#[test]
fn forced_threshold_one_gives_each_custodian_the_account() {
    let (account, password, shares) = setup(3, 1, 10);
    for s in &shares {
        assert_eq!(
            combine(&account, std::slice::from_ref(s))
                .expect("one share suffices")
                .as_str(),
            password.as_str()
        );
    }
    assert_eq!(
        combine(&account, &shares).expect("all shares").as_str(),
        password.as_str()
    );
}

#[test]
fn encoding_shape_and_roundtrip() {
    let (_, _, shares) = setup(3, 2, 11);
    let text = shares[2].encode();
    let fields: Vec<&str> = text.split(':').collect();
    assert_eq!(fields.len(), 9);
    assert_eq!(
        &fields[..6],
        ["pcbg1", "bg.one", "custodian.2", "3", "3", "2"]
    );
    assert_eq!(fields[8].len(), 8);
    assert_eq!(roundtrip(&shares[2]), shares[2]);
    let debug = format!("{:?}", shares[2]);
    assert!(!debug.contains(fields[6]), "Debug leaks the share value");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_threshold_subset_rebuilds(
        n in 2usize..=16,
        t_frac in 0.0f64..1.0,
        seed in any::<u64>(),
        pick in any::<u64>(),
    ) {
        let t = 2 + ((n - 1) as f64 * t_frac) as usize; // 2..=n
        let t = t.min(n);
        let (account, password, shares) = setup(n, t, seed);
        // A pseudo-random subset of exactly t shares, in shuffled order.
        let mut idx: Vec<usize> = (0..n).collect();
        let mut p = pick;
        for i in (1..n).rev() {
            idx.swap(i, (p % (i as u64 + 1)) as usize);
            p = p.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
        }
        let subset: Vec<Share> = idx[..t].iter().map(|&i| roundtrip(&shares[i])).collect();
        let rebuilt = combine(&account, &subset).expect("rebuilds");
        prop_assert_eq!(rebuilt.as_str(), password.as_str());
        prop_assert_eq!(
            combine(&account, &subset[..t - 1]),
            Err(CombineError::NotEnough { given: t - 1, needed: t })
        );
    }
}
