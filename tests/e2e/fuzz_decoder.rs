//! Fuzzes the command decoder for a bounded time: the corpus in `fuzz/corpus/`, mutated byte by
//! byte and field by field, with mutated tenant headers. Whatever the input, decoding must
//! answer — never panic — with a command of the type the value names, or a rejection with a
//! reason.
//!
//! `FUZZ_SECONDS` (default 20; CI runs 60) bounds the run; `FUZZ_SEED` replays a run. A run
//! longer on demand: `FUZZ_SECONDS=3600 cargo test --release --test fuzz_decoder`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use atlas_drops::kafka::message::command::decode;
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{json, Value};

/// xorshift64*: small, fast, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("fuzz/corpus")
        .map(|entry| std::fs::read(entry.expect("corpus entry").path()).expect("corpus file"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "the corpus holds the valid commands");
    seeds
}

/// Values that sit on the edges of the contract's ranges and types.
fn interesting(rng: &mut Rng) -> Value {
    let pool = [
        json!(0),
        json!(-1),
        json!(1),
        json!(127),
        json!(128),
        json!(255),
        json!(256),
        json!(32767),
        json!(32768),
        json!(-32768),
        json!(-32769),
        json!(4294967295u64),
        json!(4294967296u64),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1.0),
        json!(-0.0),
        json!(1e308),
        json!(null),
        json!(true),
        json!(""),
        json!("1"),
        json!("SPAWN"),
        json!("00000000-0000-0000-0000-000000000000"),
        json!("not-a-uuid"),
        json!([]),
        json!([1, 2, 3]),
        json!({}),
        json!({"dropId": 1}),
    ];
    pool[rng.below(pool.len())].clone()
}

fn mutate_value(value: &mut Value, rng: &mut Rng) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            match rng.below(4) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    map.insert(format!("{key}{}", rng.below(3)), interesting(rng));
                }
                2 => {
                    map.insert(key.clone(), interesting(rng));
                }
                _ => mutate_value(map.get_mut(key).expect("key"), rng),
            }
        }
        other => *other = interesting(rng),
    }
}

fn mutate_bytes(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let last = input.len() - 1;
                input[at.min(last)] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let last = input.len() - 1;
                input[at.min(last)] = rng.next() as u8;
            }
            2 => {
                let bytes: Vec<u8> = (0..rng.below(8) + 1).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(32)).min(other.len());
                input.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let tokens: [&[u8]; 8] = [
                    b"{",
                    b"}",
                    b"[",
                    b"\"",
                    b":",
                    b",",
                    b"\\u0000",
                    b"9999999999999999999999",
                ];
                input.splice(at..at, tokens[rng.below(tokens.len())].iter().copied());
            }
        }
    }
}

fn headers(rng: &mut Rng) -> Option<OwnedHeaders> {
    let mut values: Vec<(&str, Vec<u8>)> = vec![
        (
            "TENANT_ID",
            b"3a8f3c4e-2b1d-4c5e-9f6a-7b8c9d0e1f2a".to_vec(),
        ),
        ("REGION", b"GMS".to_vec()),
        ("MAJOR_VERSION", vec![0, 83]),
        ("MINOR_VERSION", vec![0, 1]),
        (
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
        ),
    ];
    match rng.below(10) {
        0 => return None,
        1 => {
            values.remove(rng.below(values.len()));
        }
        2 => {
            let index = rng.below(values.len());
            let length = rng.below(40);
            values[index].1 = (0..length).map(|_| rng.next() as u8).collect();
        }
        // Header sizes on and past the contract's bounds (§2): REGION 1–32 bytes, trace
        // headers dropped past 512 bytes; and far past them, as a peer may send.
        3 => {
            let index = rng.below(values.len());
            let length =
                [0, 1, 31, 32, 33, 35, 36, 37, 511, 512, 513, 65_536, 999_000][rng.below(13)];
            let byte = [b'a', b'-', 0xC3, 0xFF][rng.below(4)];
            values[index].1 = vec![byte; length];
        }
        4 => {
            let length = [0, 1, 511, 512, 513, 4096, 999_000][rng.below(7)];
            values.push(("tracestate", vec![b'k'; length]));
        }
        _ => {}
    }
    let mut headers = OwnedHeaders::new();
    for (key, value) in &values {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    Some(headers)
}

/// Decodes one input and checks the answer; returns whether it was accepted.
fn check(input: &[u8], headers: Option<&OwnedHeaders>) -> bool {
    let outcome = catch_unwind(AssertUnwindSafe(|| decode(Some(input), headers)));
    let decoded = outcome.unwrap_or_else(|_| {
        panic!(
            "decode panicked on {:?} with headers {headers:?}",
            String::from_utf8_lossy(input)
        )
    });
    match decoded {
        Ok((kind, command)) => {
            // What an accepted command carries on to its events stays within the bounds
            // (contract §2), so no event can be too large for the broker.
            let tenant = &command.tenant;
            assert!((1..=32).contains(&tenant.region.len()), "{tenant:?}");
            for header in [
                &command.correlation.traceparent,
                &command.correlation.tracestate,
            ] {
                assert!(header.as_ref().is_none_or(|value| value.len() <= 512));
            }
            // Unknown fields are skipped unchecked, so an accepted value may hold what a strict
            // parser refuses there (a lone surrogate escape): compare types where it parses.
            if let Ok(value) = serde_json::from_slice::<Value>(input) {
                assert_eq!(
                    value["type"],
                    kind.name(),
                    "{}",
                    String::from_utf8_lossy(input)
                );
            }
            true
        }
        Err(rejection) => {
            assert!(!rejection.reason.is_empty());
            false
        }
    }
}

#[test]
fn the_decoder_survives_anything() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("fuzzing the decoder for {seconds} s with FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let seeds = corpus();
    for seed in &seeds {
        let value: Value = serde_json::from_slice(seed).expect("corpus entries are JSON");
        let (kind, _) = decode(Some(seed), headers(&mut Rng(3)).as_ref())
            .expect("corpus entries are valid commands");
        assert_eq!(
            value["type"].as_str().map(|t| t.replace("\\u005f", "_")),
            Some(kind.name().to_owned())
        );
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..256 {
            let seed = &seeds[rng.below(seeds.len())];
            let input = if rng.below(2) == 0 {
                let mut value: Value = serde_json::from_slice(seed).expect("JSON");
                for _ in 0..=rng.below(3) {
                    mutate_value(&mut value, &mut rng);
                }
                serde_json::to_vec(&value).expect("JSON")
            } else {
                let mut bytes = seed.clone();
                mutate_bytes(&mut bytes, &seeds, &mut rng);
                bytes
            };
            let headers = headers(&mut rng);
            accepted += u64::from(check(&input, headers.as_ref()));
            runs += 1;
        }
    }
    eprintln!("{runs} inputs, {accepted} accepted, none panicked");
    assert!(runs > 1000);
}
