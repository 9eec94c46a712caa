//! Routing decision latency with 1,000 agents and 50 queues.
//!
//! `cargo run --release -p inbound --example route_bench`
//!
//! Two regimes: (1) light load, every agent idle, contacts arriving (each arrival walks its
//! queue's idle set); (2) overload, about 2,000 contacts waiting, agents freeing up (each
//! release looks at the heads of the queues in the agent's routing profile). A third of the
//! contacts carry a skill requirement. Times are wall-clock per `Acd::step` call.

use std::collections::BTreeMap;
use std::time::Instant;

use inbound::acd::{
    Acd, AcdConfig, AgentConfig, AgentStatus, ContactRequest, CriteriaStep, Decision, Event,
    ProfileQueue, QueueConfig, RoutingProfileConfig, Strategy,
};

const QUEUES: usize = 50;
const AGENTS: usize = 1000;
const PROFILES: usize = 25;
const SKILLS: usize = 10;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn config(rng: &mut Rng) -> AcdConfig {
    let strategies = [
        Strategy::RoundRobin,
        Strategy::LeastTalkTime,
        Strategy::FewestCalls,
        Strategy::SkillsWeighted,
    ];
    let queues = (0..QUEUES)
        .map(|q| QueueConfig {
            strategy: if q < 40 {
                Strategy::LongestIdle
            } else {
                strategies[q % 4]
            },
            ..QueueConfig::new(&format!("q{q}"))
        })
        .collect();
    let profiles = (0..PROFILES)
        .map(|p| RoutingProfileConfig {
            name: format!("p{p}"),
            queues: (0..6)
                .map(|i| ProfileQueue {
                    queue: format!("q{}", (p * 2 + i * 7) % QUEUES),
                    priority: 1 + (i % 3) as u8,
                    delay_s: 0,
                })
                .collect(),
            acw_s: 0,
        })
        .collect();
    let agents = (0..AGENTS)
        .map(|a| AgentConfig {
            id: format!("a{a}"),
            profile: format!("p{}", a % PROFILES),
            skills: (0..3)
                .map(|_| (format!("s{}", rng.below(SKILLS)), 1 + rng.below(5) as u8))
                .collect(),
        })
        .collect();
    AcdConfig {
        queues,
        profiles,
        agents,
    }
}

fn request(rng: &mut Rng, n: usize) -> ContactRequest {
    let mut r = ContactRequest::new(&format!("k{n}"), &format!("q{}", rng.below(QUEUES)));
    if rng.below(3) == 0 {
        r.criteria = vec![
            CriteriaStep {
                skills: BTreeMap::from([(format!("s{}", rng.below(SKILLS)), 3)]),
                expiry_s: Some(30),
            },
            CriteriaStep::default(),
        ];
    }
    r
}

fn offer(ds: &[Decision]) -> Option<(String, String)> {
    ds.iter().find_map(|d| match d {
        Decision::Offer { contact, agent, .. } => Some((contact.clone(), agent.clone())),
        _ => None,
    })
}

/// The agent takes an offered contact; returns the agent.
fn accept(acd: &mut Acd, (contact, agent): (String, String), now: i64) -> String {
    acd.step(
        Event::Accept {
            contact,
            agent: agent.clone(),
        },
        now,
    );
    agent
}

fn report(name: &str, mut ns: Vec<u128>) {
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    let mean = ns.iter().sum::<u128>() as f64 / ns.len() as f64 / 1000.0;
    println!(
        "{name:<44} n={:>6}  mean {mean:>6.2} us  p50 {:>6.2} us  p99 {:>6.2} us  p99.9 {:>7.2} us  max {:>7.2} us",
        ns.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        ns[ns.len() - 1] as f64 / 1000.0
    );
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cfg = config(&mut rng);
    let mut acd = Acd::new(&cfg).expect("valid configuration");
    let mut now: i64 = 1_000_000;
    for a in &cfg.agents {
        acd.step(
            Event::SetStatus {
                agent: a.id.clone(),
                status: AgentStatus::Available,
            },
            now,
        );
        now += 1;
    }
    println!(
        "{AGENTS} agents, {QUEUES} queues, {PROFILES} routing profiles of 6 queues, 1/3 of contacts need a skill"
    );

    // (1) Light load: contacts arrive while (almost) every agent is idle.
    let (mut arrive, mut release) = (Vec::new(), Vec::new());
    let mut n = 0;
    for _ in 0..20_000 {
        n += 1;
        now += 5;
        let req = request(&mut rng, n);
        let t = Instant::now();
        let ds = acd.step(Event::Enqueue(req), now);
        arrive.push(t.elapsed().as_nanos());
        match offer(&ds) {
            Some(offered) => {
                let agent = accept(&mut acd, offered, now);
                now += 1;
                let t = Instant::now();
                acd.step(Event::ContactEnded { agent }, now);
                release.push(t.elapsed().as_nanos());
            }
            None => {
                acd.step(
                    Event::Abandon {
                        contact: format!("k{n}"),
                    },
                    now,
                );
            }
        }
    }
    report("arrival -> offer (agents idle)", arrive);
    report("agent released, nothing waiting", release);

    // (2) Overload: every agent busy, ~2,000 contacts waiting; agents free up one at a time.
    let mut busy: Vec<String> = Vec::new();
    let mut waiting = 0;
    while busy.len() < AGENTS || waiting < 2000 {
        n += 1;
        now += 1;
        let ds = acd.step(Event::Enqueue(request(&mut rng, n)), now);
        match offer(&ds) {
            Some(offered) => busy.push(accept(&mut acd, offered, now)),
            None => waiting += 1,
        }
        if n > 200_000 {
            break;
        }
    }
    let (mut freed, mut arrive_busy) = (Vec::new(), Vec::new());
    for i in 0..20_000 {
        now += 3;
        let agent = busy.swap_remove(rng.below(busy.len()));
        let t = Instant::now();
        let ds = acd.step(
            Event::ContactEnded {
                agent: agent.clone(),
            },
            now,
        );
        freed.push(t.elapsed().as_nanos());
        if let Some(offered) = offer(&ds) {
            busy.push(accept(&mut acd, offered, now));
        } else {
            // Nothing eligible for this agent right now: it stays idle; free another one.
            acd.step(
                Event::SetStatus {
                    agent: agent.clone(),
                    status: AgentStatus::NotRoutable("Bench".into()),
                },
                now,
            );
            acd.step(
                Event::SetStatus {
                    agent: agent.clone(),
                    status: AgentStatus::Available,
                },
                now,
            );
            busy.push(agent);
        }
        // Keep the backlog topped up.
        n += 1;
        let t = Instant::now();
        let ds = acd.step(Event::Enqueue(request(&mut rng, n)), now);
        arrive_busy.push(t.elapsed().as_nanos());
        if let Some(offered) = offer(&ds) {
            busy.push(accept(&mut acd, offered, now));
        }
        if i == 0 {
            let waiting: usize = (0..QUEUES)
                .map(|q| acd.waiting(&format!("q{q}")).len())
                .sum();
            println!(
                "overload: {} agents on contacts, {waiting} contacts waiting",
                busy.len()
            );
        }
    }
    report("agent released -> best waiting contact", freed);
    report("arrival while all agents busy", arrive_busy);
    // Timers: a tick with due skill-expiry rechecks across the backlog.
    now += 31_000;
    let t = Instant::now();
    let ds = acd.step(Event::Tick, now);
    println!(
        "tick after 31 s (criteria steps expire): {} decisions in {:.2} ms",
        ds.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
}
