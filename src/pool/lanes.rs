//! Shared checkouts ("lanes") for the pool's own query methods.
//!
//! `Pool::query`, `query_one`, `query_opt` and `execute` run one autocommit statement and
//! give the connection back. When no idle connection is free, such a call joins a
//! connection another such call already has checked out, instead of waiting for one of
//! its own: the calls then share that connection's pipeline (see `docs/ARCHITECTURE.md`),
//! so a pool of 8 serves 32 tasks with batched writes and reads rather than a queue.
//!
//! A lane is returned to the pool when its last user is done. It takes at most
//! [`LANE_USES`] users in all, so a busy lane still goes back regularly and callers
//! waiting for an exclusive checkout (a transaction) are not starved. Statements that
//! change the session's transaction state (BEGIN, COMMIT, SAVEPOINT, …) never share a
//! connection, and lanes are off where pipelining is (pooler mode, a `lock_timeout`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::status::bump;
use super::{PoolInner, PooledConnection};
use crate::connection::{Params, StatementRef, ToStatement};
use crate::error::Error;
use crate::protocol::TransactionStatus;

/// How many calls one lane serves before it stops taking new users.
pub(crate) const LANE_USES: u32 = 64;
/// How many calls share one lane at a time at most.
const LANE_DEPTH: u32 = 16;

/// A connection shared by the pool's query calls.
pub(crate) struct Lane {
    conn: PooledConnection,
    /// Set while the call that opened the lane may hold the wire exclusively (its
    /// statement was not prepared yet): a drop mid-way would then break the connection
    /// under the others, so nobody joins until it is done.
    exclusive: std::sync::atomic::AtomicBool,
    /// Users now, and users in all (changed under the pool's lanes lock).
    users: AtomicU32,
    uses: AtomicU32,
}

/// One call's use of a connection: its own checkout, or a share of a lane.
pub(crate) enum Use {
    Own(PooledConnection),
    Shared(Arc<PoolInner>, Arc<Lane>),
}

impl std::ops::Deref for Use {
    type Target = crate::Connection;
    fn deref(&self) -> &crate::Connection {
        match self {
            Use::Own(conn) => conn,
            Use::Shared(_, lane) => &lane.conn,
        }
    }
}

impl Use {
    /// The call that opened its lane is done with whatever it did exclusively.
    pub(crate) fn settled(&self) {
        if let Use::Shared(pool, lane) = self
            && lane.exclusive.swap(false, Ordering::AcqRel)
        {
            // Callers queued for a checkout may join it now.
            pool.lane_ready.notify_waiters();
        }
    }
}

impl Drop for Use {
    fn drop(&mut self) {
        let Use::Shared(pool, lane) = self else {
            return;
        };
        let mut lanes = pool.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if lane.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            lanes.retain(|x| !Arc::ptr_eq(x, lane));
        }
        // The checkout goes back to the pool when the lane's last reference drops.
    }
}

/// Whether SQL may run on a shared connection: not a statement that opens, ends or
/// marks a transaction block (a later caller's statement would run inside it).
pub(crate) fn shareable<T: ToStatement + ?Sized>(statement: &T) -> bool {
    let StatementRef::Sql(sql) = statement.statement_ref() else {
        return false; // a Statement belongs to one connection
    };
    let Some(word) = crate::connection::pipeline::first_keyword(sql) else {
        return false;
    };
    const SESSION_STATE: [&str; 17] = [
        "begin",
        "start",
        "commit",
        "end",
        "rollback",
        "abort",
        "savepoint",
        "release",
        "prepare",
        "set",
        "reset",
        "discard",
        "lock",
        "declare",
        "copy",
        "listen",
        "unlisten",
    ];
    !SESSION_STATE.iter().any(|k| word.eq_ignore_ascii_case(k))
}

impl PoolInner {
    /// A connection for one of the pool's query calls: an idle one now, a share of a
    /// lane, or (waiting) a checkout of its own, which becomes a lane others can join.
    pub(crate) async fn use_for<T: ToStatement + ?Sized>(
        self: &Arc<Self>,
        statement: &T,
        params: Params<'_>,
        caller: &'static std::panic::Location<'static>,
    ) -> Result<Use, Error> {
        if !shareable(statement) || !self.config_pipelines() {
            return self.acquire(caller).await.map(Use::Own);
        }
        loop {
            // Registered before the check, so a lane opened in between is not missed.
            let ready = self.lane_ready.notified();
            let mut ready = std::pin::pin!(ready);
            ready.as_mut().enable();
            if let Some(u) = self.join_lane(statement, params) {
                return Ok(u);
            }
            // Queued for a checkout of its own, unless a lane becomes joinable first
            // (dropping the queued acquire loses nothing).
            tokio::select! {
                biased;
                conn = self.acquire(caller) => {
                    let conn = conn?;
                    let exclusive = !conn.would_pipeline(statement, params);
                    return Ok(self.open_lane(conn, exclusive));
                }
                () = &mut ready => {}
            }
        }
    }

    fn config_pipelines(&self) -> bool {
        !self.config.get_pooler_mode() && self.config.lock_timeout.is_none()
    }

    /// Joins the least-used lane that still takes users, if there is one and no idle
    /// connection is free (a free one is better used on its own).
    fn join_lane<T: ToStatement + ?Sized>(
        self: &Arc<Self>,
        statement: &T,
        params: Params<'_>,
    ) -> Option<Use> {
        if self.has_idle() {
            return None;
        }
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes
            .iter()
            .filter(|l| {
                l.users.load(Ordering::Relaxed) < LANE_DEPTH
                    && l.uses.load(Ordering::Relaxed) < LANE_USES
                    && !l.exclusive.load(Ordering::Acquire)
                    && l.conn.transaction_status() == TransactionStatus::Idle
                    && l.conn.would_pipeline(statement, params)
            })
            .min_by_key(|l| l.users.load(Ordering::Relaxed))?
            .clone();
        lane.users.fetch_add(1, Ordering::Relaxed);
        lane.uses.fetch_add(1, Ordering::Relaxed);
        drop(lanes);
        bump(&self.counters.lane_joins);
        Some(Use::Shared(self.clone(), lane))
    }

    /// Makes a checkout a lane with one user.
    fn open_lane(self: &Arc<Self>, conn: PooledConnection, exclusive: bool) -> Use {
        let lane = Arc::new(Lane {
            conn,
            exclusive: std::sync::atomic::AtomicBool::new(exclusive),
            users: AtomicU32::new(1),
            uses: AtomicU32::new(1),
        });
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(lane.clone());
        if !exclusive {
            self.lane_ready.notify_waiters();
        }
        Use::Shared(self.clone(), lane)
    }
}
