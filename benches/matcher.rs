//! The compiled matcher on 1,000,000 indicators (60 % addresses, 5 % CIDRs, 35 % domains, the
//! mix `gen_traffic.py` writes): build time, heap per indicator, and lookups per second.
//!
//! `cargo bench --bench matcher` prints the build time and memory first, then divan's timings
//! (one lookup per iteration; lookups/s = 1e9 / median ns).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use iocmatch::indicators::{csv, IndicatorSet, Provenance};
use iocmatch::matcher::Matcher;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n.wrapping_sub(l.size()), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn label(&mut self, n: usize) -> String {
        (0..n).map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789"[(self.next() % 36) as usize] as char).collect()
    }
}

const N: usize = 1_000_000;
const TLDS: [&str; 10] = ["com", "net", "org", "io", "xyz", "info", "cn", "tw", "ru", "top"];

struct Fixture {
    m: Matcher,
    ips: Vec<IpAddr>,
    names: Vec<String>,
}

fn csv_text() -> (String, Vec<u32>, Vec<String>) {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = String::from("indicator,type\n");
    let mut v4 = Vec::new();
    let mut doms = Vec::new();
    for _ in 0..N * 60 / 100 {
        if r.next().is_multiple_of(20) {
            let _ = writeln!(s, "2001:{:x}:{:x}::{:x},ipv6", r.next() as u16, r.next() as u16, r.next() as u16);
        } else {
            let a = (r.next() as u32) | 0x0100_0000;
            v4.push(a);
            let _ = writeln!(s, "{},ipv4", std::net::Ipv4Addr::from(a));
        }
    }
    for _ in 0..N * 5 / 100 {
        let len = [16u8, 20, 22, 24, 24, 24, 28][(r.next() % 7) as usize];
        let a = (r.next() as u32) & (u32::MAX << (32 - len));
        let _ = writeln!(s, "{}/{len},cidr", std::net::Ipv4Addr::from(a));
    }
    for _ in 0..N * 35 / 100 {
        let n = 5 + (r.next() % 10) as usize;
        let d = format!("{}.{}", r.label(n), TLDS[(r.next() % 10) as usize]);
        let _ = writeln!(s, "{d},domain");
        doms.push(d);
    }
    (s, v4, doms)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (text, v4, doms) = csv_text();
        let before = LIVE.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let mut set = IndicatorSet::new();
        csv::load(&text, &Arc::from("bench.csv"), Provenance::default(), &mut set);
        let t_load = t0.elapsed();
        let n = set.indicators.len();
        let t1 = Instant::now();
        let m = Matcher::new(set);
        let t_build = t1.elapsed();
        let heap = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "matcher: {n} indicators; CSV load + normalise {:.3} s; compile {:.3} s; heap {:.1} MB = {:.0} bytes/indicator",
            t_load.as_secs_f64(),
            t_build.as_secs_f64(),
            heap as f64 / 1e6,
            heap as f64 / n as f64
        );
        // Queries: half hits, half random misses; domains 30 % exact, 20 % subdomains,
        // 10 % near misses, 40 % random.
        let mut r = Rng(42);
        let ips: Vec<IpAddr> = (0..1 << 16)
            .map(|i| {
                if i % 2 == 0 {
                    IpAddr::from(std::net::Ipv4Addr::from(v4[(r.next() as usize) % v4.len()]))
                } else {
                    IpAddr::from(std::net::Ipv4Addr::from(r.next() as u32))
                }
            })
            .collect();
        let names: Vec<String> = (0..1 << 16)
            .map(|_| {
                let d = &doms[(r.next() as usize) % doms.len()];
                match r.next() % 10 {
                    0..=2 => d.clone(),
                    3 | 4 => format!("www.{d}"),
                    5 => format!("x{d}"),
                    _ => format!("{}.{}", r.label(9), TLDS[(r.next() % 10) as usize]),
                }
            })
            .collect();
        Fixture { m, ips, names }
    })
}

fn main() {
    fixture();
    divan::main();
}

/// 65,536 lookups per iteration; divan prints items/s.
#[divan::bench(sample_count = 30)]
fn address_lookup(b: divan::Bencher) {
    let f = fixture();
    b.counter(divan::counter::ItemsCount::new(f.ips.len())).bench_local(|| {
        let mut hits = 0u32;
        for ip in &f.ips {
            f.m.lookup_ip(divan::black_box(*ip), 443, &mut |_| hits += 1);
        }
        hits
    });
}

/// 65,536 lookups per iteration (each walks every label boundary); divan prints items/s.
#[divan::bench(sample_count = 30)]
fn domain_lookup(b: divan::Bencher) {
    let f = fixture();
    b.counter(divan::counter::ItemsCount::new(f.names.len())).bench_local(|| {
        let mut hits = 0u32;
        for n in &f.names {
            f.m.lookup_domain(divan::black_box(n), &mut |_| hits += 1);
        }
        hits
    });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn compile_1m(b: divan::Bencher) {
    let (text, _, _) = csv_text();
    b.with_inputs(|| {
        let mut set = IndicatorSet::new();
        csv::load(&text, &Arc::from("bench.csv"), Provenance::default(), &mut set);
        set
    })
    .bench_local_values(Matcher::new);
}
