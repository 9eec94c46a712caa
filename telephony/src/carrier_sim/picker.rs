//! Which class a call gets, sans-IO: an agent-phone prefix first, then a per-number rule on the
//! last digit of the called number (deterministic, for tests), else a seeded draw by the
//! configured shares.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::persona::Class;

/// The shares of the four customer classes (they need not sum to 1; they are normalised).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    pub human: f64,
    pub machine: f64,
    pub busy: f64,
    pub no_answer: f64,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            human: 0.6,
            machine: 0.2,
            busy: 0.1,
            no_answer: 0.1,
        }
    }
}

impl Shares {
    /// Refuses negative, non-finite or all-zero shares, naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("human", self.human),
            ("machine", self.machine),
            ("busy", self.busy),
            ("no-answer", self.no_answer),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "share --{name} must be a non-negative number, got {v}"
                ));
            }
        }
        if self.human + self.machine + self.busy + self.no_answer <= 0.0 {
            return Err("the shares (--human, --machine, --busy, --no-answer) are all zero".into());
        }
        Ok(())
    }

    /// The class at `u` in [0, 1).
    fn at(&self, u: f64) -> Class {
        let total = self.human + self.machine + self.busy + self.no_answer;
        let mut x = u * total;
        for (c, v) in [
            (Class::Human, self.human),
            (Class::Machine, self.machine),
            (Class::Busy, self.busy),
        ] {
            if x < v {
                return c;
            }
            x -= v;
        }
        if self.no_answer > 0.0 {
            Class::NoAnswer
        } else {
            // Rounding at the very top: the last class with a share.
            [
                (Class::Busy, self.busy),
                (Class::Machine, self.machine),
                (Class::Human, self.human),
            ]
            .into_iter()
            .find(|(_, v)| *v > 0.0)
            .map(|(c, _)| c)
            .unwrap_or(Class::Human)
        }
    }
}

/// Classes by the called number's last digit, e.g. `0-5=human,6-7=machine,8=busy,9=no-answer`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastDigitRule(pub BTreeMap<char, Class>);

impl LastDigitRule {
    /// The rule the tests use: 0–5 human, 6–7 machine, 8 busy, 9 no answer.
    pub fn standard() -> Self {
        Self::parse("0-5=human,6-7=machine,8=busy,9=no-answer").expect("valid")
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (digits, class) = part
                .split_once('=')
                .ok_or_else(|| format!("rule {part:?}: expected DIGITS=CLASS, e.g. 0-5=human"))?;
            let class = Class::parse(class).ok_or_else(|| {
                format!("rule {part:?}: unknown class {class:?} (human, machine, busy, no-answer, agent)")
            })?;
            let digits = digits.trim();
            let (lo, hi) = match digits.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (digits, digits),
            };
            let one = |d: &str| -> Result<char, String> {
                let mut it = d.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) if c.is_ascii_digit() => Ok(c),
                    _ => Err(format!("rule {part:?}: {d:?} is not a single digit")),
                }
            };
            let (lo, hi) = (one(lo)?, one(hi)?);
            if lo > hi {
                return Err(format!("rule {part:?}: range runs backwards"));
            }
            for d in lo..=hi {
                if map.insert(d, class).is_some() {
                    return Err(format!("rule {part:?}: digit {d} is given twice"));
                }
            }
        }
        Ok(LastDigitRule(map))
    }

    pub fn class_of(&self, number: &str) -> Option<Class> {
        let last = number.chars().rev().find(|c| c.is_ascii_digit())?;
        self.0.get(&last).copied()
    }
}

/// Draws the class of each call.
#[derive(Debug)]
pub struct Picker {
    shares: Shares,
    rule: LastDigitRule,
    agent_prefix: Option<String>,
    rng: StdRng,
}

impl Picker {
    pub fn new(
        shares: Shares,
        rule: LastDigitRule,
        agent_prefix: Option<String>,
        seed: u64,
    ) -> Picker {
        Picker {
            shares,
            rule,
            agent_prefix,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The class for a call to `user` (the Request-URI user part).
    pub fn pick(&mut self, user: &str) -> Class {
        if let Some(p) = &self.agent_prefix
            && user.starts_with(p.as_str())
        {
            return Class::Agent;
        }
        if let Some(c) = self.rule.class_of(user) {
            return c;
        }
        let u: f64 = self.rng.random();
        self.shares.at(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_rule_maps_last_digits() {
        let r = LastDigitRule::standard();
        assert_eq!(r.class_of("15550100"), Some(Class::Human));
        assert_eq!(r.class_of("15550105"), Some(Class::Human));
        assert_eq!(r.class_of("15550106"), Some(Class::Machine));
        assert_eq!(r.class_of("+1555010 7"), Some(Class::Machine));
        assert_eq!(r.class_of("15550108"), Some(Class::Busy));
        assert_eq!(r.class_of("15550109"), Some(Class::NoAnswer));
        assert_eq!(r.class_of("alice"), None);
        assert_eq!(LastDigitRule::parse("").unwrap().class_of("1"), None);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert!(
            LastDigitRule::parse("0-5")
                .unwrap_err()
                .contains("DIGITS=CLASS")
        );
        assert!(
            LastDigitRule::parse("0-5=fax")
                .unwrap_err()
                .contains("unknown class")
        );
        assert!(
            LastDigitRule::parse("5-0=human")
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            LastDigitRule::parse("12=human")
                .unwrap_err()
                .contains("single digit")
        );
        assert!(
            LastDigitRule::parse("0-5=human,5=busy")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn shares_are_followed_and_the_seed_repeats_the_draw() {
        let shares = Shares {
            human: 0.5,
            machine: 0.25,
            busy: 0.15,
            no_answer: 0.1,
        };
        let draw = |seed| {
            let mut p = Picker::new(shares, LastDigitRule::default(), None, seed);
            (0..20_000).map(|_| p.pick("alice")).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        let share = |c| a.iter().filter(|x| **x == c).count() as f64 / a.len() as f64;
        for (c, want) in [
            (Class::Human, 0.5),
            (Class::Machine, 0.25),
            (Class::Busy, 0.15),
            (Class::NoAnswer, 0.1),
        ] {
            assert!(
                (share(c) - want).abs() < 0.02,
                "{c:?}: {} vs {want}",
                share(c)
            );
        }
    }

    #[test]
    fn zero_shares_never_come_up_and_bad_shares_are_refused() {
        let only_busy = Shares {
            human: 0.0,
            machine: 0.0,
            busy: 1.0,
            no_answer: 0.0,
        };
        let mut p = Picker::new(only_busy, LastDigitRule::default(), None, 1);
        assert!((0..1000).all(|_| p.pick("x") == Class::Busy));
        assert_eq!(only_busy.at(0.999_999_999), Class::Busy);
        assert!(
            Shares {
                human: -0.1,
                ..only_busy
            }
            .validate()
            .unwrap_err()
            .contains("--human")
        );
        assert!(
            Shares {
                busy: 0.0,
                ..only_busy
            }
            .validate()
            .unwrap_err()
            .contains("all zero")
        );
        assert!(Shares::default().validate().is_ok());
    }

    #[test]
    fn agent_prefix_wins_over_the_rule() {
        let mut p = Picker::new(
            Shares::default(),
            LastDigitRule::standard(),
            Some("agent".into()),
            1,
        );
        assert_eq!(p.pick("agent1008"), Class::Agent);
        assert_eq!(p.pick("1008"), Class::Busy);
    }
}
