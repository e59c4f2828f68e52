//! An exhaustive model check of the pool's slot accounting (tests only).
//!
//! The pool's rules, as `mod.rs` states them: slots are a FIFO semaphore of `max_size`
//! permits; a permit is held by every connection checked out, being opened, being
//! cleaned up or draining, and by a caller between getting its slot and taking an
//! idle connection or opening one; idle connections hold none; a connection goes into
//! the idle queue *before* its slot is released, so the waiter that slot wakes finds
//! it; a cancelled opening hands its connection to the idle queue; maintenance takes a
//! free slot before it closes an idle connection.
//!
//! The pool is built on Tokio's semaphore, so loom cannot run it as is. Instead this
//! module states those rules as a small transition system and explores every
//! interleaving of a few acquirers (each may be cancelled while waiting, holding a bare
//! slot or opening; each returns its connection healthy or broken) and a maintenance
//! task, breadth-first over distinct states, checking after every step:
//!
//! - never more server backends than `max_size`;
//! - every connection in exactly one place (idle, or held by one task);
//! - permits held + permits free = `max_size` (a free permit never sits beside a
//!   waiter: no lost wake-up);
//! - waiters get their slots in the order they queued;
//! - no double return: a connection is in the idle queue at most once, and a return
//!   releases one permit, once. The real pool makes this so in two ways, both modelled
//!   here: a `PooledConnection` takes its connection, slot and gauge out of their
//!   `Option`s in `Drop` (`pooled.rs`), so whatever runs its return logic again finds
//!   nothing to give back; and a clone of the `Connection` the user kept is a handle,
//!   not a checkout: `give_back` sees it (`has_other_handles`) and closes the
//!   connection under its slot (`EvictReason::ClonedOut`, counted in
//!   `evicted_cloned_out`) instead of putting it idle, so a connection in the idle
//!   queue or with another task never has a handle left anywhere else;
//!
//! and in every final state: all permits free, no waiter left, every backend idle.
//! Each rule is also broken on purpose ([`Flaw`]) to show the check finds it.

use std::collections::{HashSet, VecDeque};

/// Where one task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pc {
    Start,
    /// Queued on the semaphore.
    Waiting,
    /// Holds a slot, no connection yet.
    Granted,
    /// Holds a slot; connection `conn` is being opened (its backend exists).
    Opening {
        conn: u8,
        cancelled: bool,
    },
    /// Holds a slot and connection `conn`.
    Out(u8),
    /// Holds a slot; `conn` is being closed.
    Closing(u8),
    /// Its connection is in the idle queue; its slot not yet released.
    Releasing,
    /// Flawed order: its slot is released, `conn` not yet in the idle queue.
    Parking(u8),
    Done,
}

/// What an acquirer does once it has a connection, and whether it gives up early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Script {
    returns_broken: bool,
    may_cancel: bool,
    /// Its connect may fail.
    may_fail: bool,
    /// It clones the `Connection` while checked out; the clone may outlive the return.
    keeps_clone: bool,
    /// Its return logic runs a second time (a stale handle given back again).
    returns_twice: bool,
}

/// A rule of the pool broken on purpose, to show that the check catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flaw {
    None,
    /// Release the slot before putting the connection in the idle queue.
    ReleaseBeforeIdle,
    /// Maintenance closes an idle connection without taking a slot.
    EvictWithoutSlot,
    /// A cancelled opening drops its slot and forgets the connection (never closed).
    ForgetCancelledOpen,
    /// A failed connect keeps its slot.
    KeepSlotOnFailure,
    /// The return does not take the connection and slot out of the handle, so a second
    /// return puts the connection idle again and releases a second permit.
    ReturnWithoutTake,
    /// The return ignores a clone the user kept and puts the connection idle anyway.
    IgnoreClones,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    free: usize,
    waiters: VecDeque<usize>,
    idle: Vec<u8>,
    backends: usize,
    next_conn: u8,
    tasks: Vec<Pc>,
    /// Maintenance: None idle, or closing `conn` under a slot (or without, if flawed).
    evicting: Option<u8>,
    evictions_left: u8,
    /// Live clones of a `Connection` handle: (the task that made it, the connection).
    clones: Vec<(usize, u8)>,
    /// Per task: whether it has made its one clone.
    cloned: Vec<bool>,
    /// Per task: a handle whose return already ran, to be returned again (the
    /// connection it had).
    stale: Vec<Option<u8>>,
    /// Queue order and grant order of waiters, for the FIFO check.
    queued: Vec<usize>,
    granted: Vec<usize>,
}

struct Model {
    max: usize,
    scripts: Vec<Script>,
    flaw: Flaw,
}

impl Model {
    fn initial(&self) -> State {
        State {
            free: self.max,
            waiters: VecDeque::new(),
            idle: Vec::new(),
            backends: 0,
            next_conn: 0,
            tasks: vec![Pc::Start; self.scripts.len()],
            evicting: None,
            evictions_left: 1,
            clones: Vec::new(),
            cloned: vec![false; self.scripts.len()],
            stale: vec![None; self.scripts.len()],
            queued: Vec::new(),
            granted: Vec::new(),
        }
    }

    /// Every state one step of one task leads to.
    fn successors(&self, s: &State) -> Vec<State> {
        let mut out = Vec::new();
        for t in 0..s.tasks.len() {
            self.task_steps(s, t, &mut out);
            self.handle_steps(s, t, &mut out);
        }
        self.maintenance_steps(s, &mut out);
        out
    }

    /// A slot goes back: to the first waiter if any (Tokio's semaphore hands it over
    /// directly), else to the free count.
    fn release(s: &mut State) {
        match s.waiters.pop_front() {
            Some(w) => {
                s.tasks[w] = Pc::Granted;
                s.granted.push(w);
            }
            None => s.free += 1,
        }
    }

    fn task_steps(&self, s: &State, t: usize, out: &mut Vec<State>) {
        let script = self.scripts[t];
        let mut next = |f: &dyn Fn(&mut State)| {
            let mut n = s.clone();
            f(&mut n);
            out.push(n);
        };
        match s.tasks[t] {
            Pc::Start => next(&|n| {
                if n.free > 0 && !n.idle.is_empty() {
                    // The fast path: a free slot and an idle connection.
                    n.free -= 1;
                    n.tasks[t] = Pc::Out(n.idle.pop().expect("checked"));
                } else if n.free > 0 {
                    n.free -= 1;
                    n.tasks[t] = Pc::Granted;
                } else {
                    n.waiters.push_back(t);
                    n.queued.push(t);
                    n.tasks[t] = Pc::Waiting;
                }
            }),
            Pc::Waiting => {
                if script.may_cancel {
                    next(&|n| {
                        n.waiters.retain(|&w| w != t);
                        n.queued.retain(|&w| w != t);
                        n.tasks[t] = Pc::Done;
                    });
                }
            }
            Pc::Granted => {
                next(&|n| match n.idle.pop() {
                    Some(conn) => n.tasks[t] = Pc::Out(conn),
                    None => {
                        let conn = n.next_conn;
                        n.next_conn += 1;
                        n.backends += 1;
                        n.tasks[t] = Pc::Opening {
                            conn,
                            cancelled: false,
                        };
                    }
                });
                if script.may_cancel {
                    // The acquire future dropped with its slot assigned gives it back.
                    next(&|n| {
                        n.tasks[t] = Pc::Done;
                        Self::release(n);
                    });
                }
            }
            Pc::Opening { conn, cancelled } => {
                self.opening_steps(s, t, conn, cancelled, script, out)
            }
            Pc::Out(conn) => next(&|n| {
                // `give_back` (pooled.rs): a clone still alive closes the connection.
                let cloned_out = n.clones.iter().any(|&(_, c)| c == conn);
                match script.returns_broken || (cloned_out && self.flaw != Flaw::IgnoreClones) {
                    true => n.tasks[t] = Pc::Closing(conn),
                    false => self.return_idle(n, t, conn),
                }
                if script.returns_twice {
                    n.stale[t] = Some(conn);
                }
            }),
            Pc::Closing(_) => next(&|n| {
                n.backends -= 1;
                n.tasks[t] = Pc::Done;
                Self::release(n);
            }),
            Pc::Releasing => next(&|n| {
                n.tasks[t] = Pc::Done;
                Self::release(n);
            }),
            Pc::Parking(conn) => next(&|n| {
                n.idle.push(conn);
                n.tasks[t] = Pc::Done;
            }),
            Pc::Done => {}
        }
    }

    /// What a task's handles do besides the checkout itself: clone the `Connection`
    /// while it is out, drop a clone (at any time, even after the return), and run the
    /// return logic a second time on a handle already given back.
    fn handle_steps(&self, s: &State, t: usize, out: &mut Vec<State>) {
        let script = self.scripts[t];
        if let Pc::Out(conn) = s.tasks[t]
            && script.keeps_clone
            && !s.cloned[t]
        {
            let mut n = s.clone();
            n.cloned[t] = true;
            n.clones.push((t, conn));
            out.push(n);
        }
        for i in 0..s.clones.len() {
            if s.clones[i].0 == t {
                let mut n = s.clone();
                n.clones.remove(i);
                out.push(n);
            }
        }
        if let Some(conn) = s.stale[t] {
            let mut n = s.clone();
            n.stale[t] = None;
            // The real `Drop` took the connection and the slot out of their `Option`s
            // the first time: the second pass finds `None` and gives back nothing.
            if self.flaw == Flaw::ReturnWithoutTake {
                n.idle.push(conn);
                Self::release(&mut n);
            }
            out.push(n);
        }
    }

    /// The first of the two steps that put a connection back (the second is
    /// [`Pc::Releasing`] or, flawed, [`Pc::Parking`]).
    fn return_idle(&self, n: &mut State, t: usize, conn: u8) {
        if self.flaw == Flaw::ReleaseBeforeIdle {
            Self::release(n);
            n.tasks[t] = Pc::Parking(conn);
        } else {
            n.idle.push(conn);
            n.tasks[t] = Pc::Releasing;
        }
    }

    fn opening_steps(
        &self,
        s: &State,
        t: usize,
        conn: u8,
        cancelled: bool,
        script: Script,
        out: &mut Vec<State>,
    ) {
        let mut next = |f: &dyn Fn(&mut State)| {
            let mut n = s.clone();
            f(&mut n);
            out.push(n);
        };
        // Connected: to the caller, or (cancelled) through the hand-off to the idle queue.
        next(&|n| match cancelled {
            false => n.tasks[t] = Pc::Out(conn),
            true if self.flaw == Flaw::ForgetCancelledOpen => {
                n.tasks[t] = Pc::Done;
                Self::release(n);
            }
            true => self.return_idle(n, t, conn),
        });
        if script.may_fail {
            next(&|n| {
                n.backends -= 1;
                n.tasks[t] = Pc::Done;
                if self.flaw != Flaw::KeepSlotOnFailure {
                    Self::release(n);
                }
            });
        }
        if script.may_cancel && !cancelled {
            next(&|n| {
                n.tasks[t] = Pc::Opening {
                    conn,
                    cancelled: true,
                }
            });
        }
    }

    fn maintenance_steps(&self, s: &State, out: &mut Vec<State>) {
        match s.evicting {
            None if s.evictions_left > 0 && !s.idle.is_empty() => {
                let without_slot = self.flaw == Flaw::EvictWithoutSlot;
                if s.free > 0 || without_slot {
                    let mut n = s.clone();
                    if !without_slot {
                        n.free -= 1;
                    }
                    n.evicting = n.idle.pop();
                    n.evictions_left -= 1;
                    out.push(n);
                }
            }
            Some(_) => {
                let mut n = s.clone();
                n.evicting = None;
                n.backends -= 1;
                if self.flaw != Flaw::EvictWithoutSlot {
                    Self::release(&mut n);
                }
                out.push(n);
            }
            None => {}
        }
    }

    /// The invariants of every state; the violated one, if any.
    fn check(&self, s: &State) -> Result<(), String> {
        if s.backends > self.max {
            return Err(format!("{} backends open, max {}", s.backends, self.max));
        }
        if s.free > self.max {
            return Err(format!(
                "{} slots free of {}: a return released twice",
                s.free, self.max
            ));
        }
        let idle_distinct: HashSet<u8> = s.idle.iter().copied().collect();
        if idle_distinct.len() != s.idle.len() {
            return Err(format!(
                "idle queue {:?}: a connection returned twice",
                s.idle
            ));
        }
        let held: Vec<u8> = s.tasks.iter().filter_map(|pc| conn_of(*pc)).collect();
        let mut places: Vec<u8> = s.idle.iter().copied().chain(held).collect();
        places.extend(s.evicting);
        let distinct: HashSet<u8> = places.iter().copied().collect();
        if distinct.len() != places.len() || places.len() != s.backends {
            return Err(format!(
                "connections {places:?} for {} backends",
                s.backends
            ));
        }
        let holders = s.tasks.iter().filter(|pc| holds_slot(**pc)).count()
            + usize::from(s.evicting.is_some() && self.flaw != Flaw::EvictWithoutSlot);
        if holders + s.free != self.max {
            return Err(format!(
                "{holders} slots held + {} free != {}",
                s.free, self.max
            ));
        }
        if s.free > 0 && !s.waiters.is_empty() {
            return Err(format!("a free slot beside waiters {:?}", s.waiters));
        }
        if let Some(&(t, c)) = s.clones.iter().find(|&&(t, c)| {
            s.idle.contains(&c)
                || s.evicting == Some(c)
                || (s.tasks.iter().enumerate()).any(|(u, pc)| u != t && conn_of(*pc) == Some(c))
        }) {
            return Err(format!(
                "connection {c} handed on while task {t} still holds a clone of it"
            ));
        }
        if !s.queued.starts_with(&s.granted) {
            return Err(format!("queued {:?}, served {:?}", s.queued, s.granted));
        }
        Ok(())
    }

    /// The final-state checks: nothing can move any more.
    fn check_final(&self, s: &State) -> Result<(), String> {
        if let Some(t) = s.tasks.iter().position(|pc| *pc != Pc::Done) {
            return Err(format!(
                "task {t} stuck at {:?} (a lost wake-up)",
                s.tasks[t]
            ));
        }
        if s.free != self.max {
            return Err(format!(
                "{} of {} slots free at the end: leaked",
                s.free, self.max
            ));
        }
        if s.backends != s.idle.len() {
            return Err(format!("{} backends, {} idle", s.backends, s.idle.len()));
        }
        Ok(())
    }

    /// Explores every reachable state; returns how many, or the first violation with
    /// the state it was found in.
    fn explore(&self) -> Result<usize, String> {
        let start = self.initial();
        let mut seen = HashSet::from([start.clone()]);
        let mut queue = VecDeque::from([start]);
        while let Some(s) = queue.pop_front() {
            self.check(&s).map_err(|e| format!("{e} in {s:?}"))?;
            let next = self.successors(&s);
            if next.is_empty() {
                self.check_final(&s).map_err(|e| format!("{e} in {s:?}"))?;
            }
            for n in next {
                if seen.insert(n.clone()) {
                    queue.push_back(n);
                }
            }
        }
        Ok(seen.len())
    }
}

fn conn_of(pc: Pc) -> Option<u8> {
    match pc {
        Pc::Opening { conn, .. } | Pc::Out(conn) | Pc::Closing(conn) | Pc::Parking(conn) => {
            Some(conn)
        }
        _ => None,
    }
}

fn holds_slot(pc: Pc) -> bool {
    matches!(
        pc,
        Pc::Granted | Pc::Opening { .. } | Pc::Out(_) | Pc::Closing(_) | Pc::Releasing
    )
}

/// The scripts of the slot checks: healthy or broken return; cancellable or not; a
/// connect that may fail or not.
fn slot_scripts() -> Vec<Script> {
    (0..8u8)
        .map(|b| Script {
            returns_broken: b & 1 != 0,
            may_cancel: b & 2 != 0,
            may_fail: b & 4 != 0,
            keeps_clone: false,
            returns_twice: false,
        })
        .collect()
}

/// The scripts of the return checks: a plain checkout, one that keeps a clone, one
/// that returns twice, and a broken return doing both.
fn return_scripts() -> Vec<Script> {
    [
        (false, false, false),
        (false, true, false),
        (false, false, true),
        (true, true, true),
    ]
    .into_iter()
    .map(|(returns_broken, keeps_clone, returns_twice)| Script {
        returns_broken,
        may_cancel: false,
        may_fail: false,
        keeps_clone,
        returns_twice,
    })
    .collect()
}

/// Every mix of `n` acquirers' scripts drawn from `all`, up to the order of the
/// acquirers.
fn script_mixes(all: &[Script], n: usize) -> Vec<Vec<Script>> {
    let mut mixes = vec![Vec::new()];
    for _ in 0..n {
        mixes = mixes
            .into_iter()
            .flat_map(|m: Vec<Script>| {
                let from = m
                    .last()
                    .map_or(0, |l| all.iter().position(|s| s == l).unwrap());
                all[from..]
                    .iter()
                    .map(move |s| {
                        let mut m = m.clone();
                        m.push(*s);
                        m
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    mixes
}

/// Explores every mix of three acquirers drawn from `scripts`, for pools of one and two
/// slots; returns (models, states).
fn explore_all(scripts: &[Script]) -> (usize, usize) {
    let mut states = 0;
    let mut mixes = 0;
    for max in 1..=2 {
        for scripts in script_mixes(scripts, 3) {
            let model = Model {
                max,
                scripts,
                flaw: Flaw::None,
            };
            states += model.explore().unwrap_or_else(|e| panic!("max {max}: {e}"));
            mixes += 1;
        }
    }
    (mixes, states)
}

#[test]
fn every_interleaving_of_three_acquirers_and_maintenance_keeps_the_slot_invariants() {
    let (mixes, states) = explore_all(&slot_scripts());
    println!("{mixes} models, {states} states, every invariant held");
    assert!(states > 10_000, "{states}");
}

#[test]
fn no_connection_is_returned_twice_nor_handed_on_while_a_clone_is_out() {
    let (mixes, states) = explore_all(&return_scripts());
    println!("{mixes} models, {states} states, no double return");
    assert!(states > 10_000, "{states}");
}

#[test]
fn the_check_finds_each_rule_broken_on_purpose() {
    let flaws = [
        Flaw::ReleaseBeforeIdle,
        Flaw::EvictWithoutSlot,
        Flaw::ForgetCancelledOpen,
        Flaw::KeepSlotOnFailure,
        Flaw::ReturnWithoutTake,
        Flaw::IgnoreClones,
    ];
    for flaw in flaws {
        let found = [slot_scripts(), return_scripts()].iter().any(|all| {
            (1..=2).any(|max| {
                script_mixes(all, 3).into_iter().any(|scripts| {
                    let model = Model { max, scripts, flaw };
                    model.explore().is_err()
                })
            })
        });
        assert!(found, "{flaw:?} went unnoticed");
    }
}
