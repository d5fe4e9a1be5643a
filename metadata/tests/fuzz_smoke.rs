//! Runs the fuzz entry points on generated and mutated input, so that every `cargo test` exercises
//! the parsers a little even without `cargo fuzz` (which needs nightly: see `metadata/fuzz`).

use std::io::Write;

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"x").unwrap();
    vec![
        br#"{"ssh":{"entries":{"k":{"perm":"0600","content":"x"}}},"a":{"content":""}}"#.to_vec(),
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        b"<GoalState><Incarnation>1</Incarnation><ContainerId>c</ContainerId><InstanceId>i</InstanceId></GoalState>".to_vec(),
        br#"{"compute":{"publicKeys":[{"keyData":"k"}]},"network":{"interface":[{"ipv4":{"ipAddress":[{}]}}]}}"#.to_vec(),
        br#"{"network":{"interfaces":[{"name":"eth0","mac":"aa"}],"addresses":[{"address":"1.2.3.4","cidr":31}]}}"#.to_vec(),
        b"HOSTNAME=x\nSSH_PUBLIC_KEYS=99999999999\n".to_vec(),
        gz.finish().unwrap(),
    ]
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let pos = rng.below(out.len() + 1);
        match rng.below(3) {
            0 if !out.is_empty() => {
                let i = pos.min(out.len() - 1);
                out[i] = rng.next() as u8;
            }
            1 => out.insert(pos, rng.next() as u8),
            _ => out.truncate(pos),
        }
    }
    out
}

#[test]
fn parsers_survive_mutated_and_random_input() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    for round in 0..20_000 {
        let input = if round % 4 == 0 {
            (0..rng.below(256)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, &seeds[round % seeds.len()])
        };
        metadata::fuzzing::userdata(&input);
        metadata::fuzzing::replies(&input);
    }
}

#[test]
fn images_survive_corruption() {
    // A real image shape: an ISO9660 primary volume descriptor with random fields after it.
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let mut img = vec![0u8; 40 * 1024];
        for b in img.iter_mut() {
            *b = rng.next() as u8;
        }
        img[16 * 2048] = 1;
        img[16 * 2048 + 1..16 * 2048 + 6].copy_from_slice(b"CD001");
        img[16 * 2048 + 128..16 * 2048 + 130].copy_from_slice(&2048u16.to_le_bytes());
        metadata::fuzzing::replies(&img);
    }
}

#[test]
fn fat_images_survive_corruption() {
    let mut rng = Rng(7);
    for _ in 0..3_000 {
        let mut img = vec![0u8; 64 * 1024];
        for b in img.iter_mut().skip(512) {
            *b = if rng.below(4) == 0 {
                rng.next() as u8
            } else {
                0
            };
        }
        img[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        img[11..13].copy_from_slice(&512u16.to_le_bytes());
        img[13] = [1u8, 2, 4, 0, 3][rng.below(5)];
        img[14..16].copy_from_slice(&1u16.to_le_bytes());
        img[16] = [2u8, 1, 0][rng.below(3)];
        img[17..19].copy_from_slice(&(rng.below(1024) as u16).to_le_bytes());
        img[19..21].copy_from_slice(&128u16.to_le_bytes());
        img[21] = 0xF8;
        img[22..24].copy_from_slice(&(rng.below(4) as u16).to_le_bytes());
        img[38] = 0x29;
        img[510] = 0x55;
        img[511] = 0xAA;
        let _ = metadata::disk::fat_read_file(std::io::Cursor::new(img), "user-data", 1 << 20);
    }
}
