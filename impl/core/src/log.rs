//! Log records and recovery-fork arithmetic: the fork history of a log and the fork point
//! (longest common prefix) of two logs, which decides what a returning replica reverts.
//!
//! LSNs are ordinal (the first record is `Lsn(1)`, `Lsn(0)` is the empty log) and every record
//! is one committed transaction, so `end_of_log_lsn` is also the number of records.

use crate::ids::Epoch;
use hadr_types::{Lsn, TxnId};
use serde::{Deserialize, Serialize};

/// One write of a transaction: set `key` to `value` in the database's key-value data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Write {
    /// The key.
    pub key: String,
    /// Its new value.
    pub value: String,
}

impl Write {
    /// What a write counts beyond its key and value toward its transaction's size
    /// ([`CoreOptions::max_transaction_bytes`](crate::CoreOptions::max_transaction_bytes)):
    /// room for the lengths of both. A shell whose encoding of a write takes no more than the
    /// key, the value and this has every log record bounded by the limit.
    pub const OVERHEAD_BYTES: usize = 8;

    /// The bytes this write adds to its transaction's size: key, value and
    /// [`Write::OVERHEAD_BYTES`].
    pub fn counted_bytes(&self) -> usize {
        self.key.len() + self.value.len() + Write::OVERHEAD_BYTES
    }
}

/// One log record: the commit of one transaction with all its writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogRecord {
    /// Ordinal position in the database's log (from 1).
    pub lsn: Lsn,
    /// The recovery fork it was written in.
    pub epoch: Epoch,
    /// The transaction it commits.
    pub txn: TxnId,
    /// The transaction's writes, in the order the client made them.
    pub writes: Vec<Write>,
}

/// Where an epoch's records begin in a log: the log's records from `first_lsn` up to the next
/// segment's `first_lsn` (or the end of the log) were written in `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForkSegment {
    /// The epoch.
    pub epoch: Epoch,
    /// Its first record in this log.
    pub first_lsn: Lsn,
}

/// The fork history of a log: one segment per run of records of the same epoch.
pub fn fork_history(records: &[LogRecord]) -> Vec<ForkSegment> {
    let mut out: Vec<ForkSegment> = Vec::new();
    for record in records {
        if out.last().map(|s| s.epoch) != Some(record.epoch) {
            out.push(ForkSegment {
                epoch: record.epoch,
                first_lsn: record.lsn,
            });
        }
    }
    out
}

/// Why a fork history or a run of records is not well formed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LogShapeError {
    /// A record is not at the position that follows the previous one.
    #[error(
        "record at position {index} has LSN {found}, expected {expected}: LSNs must be consecutive"
    )]
    NotContiguous {
        /// Position of the record in the run (from 0).
        index: usize,
        /// The LSN it has.
        found: Lsn,
        /// The LSN it should have.
        expected: Lsn,
    },
    /// A record's epoch is older than the one before it.
    #[error(
        "record {lsn} is of {epoch}, older than the {previous} before it: epochs never go back"
    )]
    EpochGoesBack {
        /// The record.
        lsn: Lsn,
        /// Its epoch.
        epoch: Epoch,
        /// The epoch of the record before it.
        previous: Epoch,
    },
    /// A fork history whose segments are not in increasing order inside the log.
    #[error("fork history is malformed: segment {index} does not start after the previous one and inside the log (end {end_of_log})")]
    BadForkHistory {
        /// The offending segment (from 0).
        index: usize,
        /// The end of the log it describes.
        end_of_log: Lsn,
    },
}

/// Checks that `records` continue a log whose last record is `after` (LSN and epoch).
pub fn check_run(
    records: &[LogRecord],
    after: Lsn,
    after_epoch: Epoch,
) -> Result<(), LogShapeError> {
    let mut previous = after_epoch;
    for (index, record) in records.iter().enumerate() {
        let expected = Lsn(after.0.saturating_add(1).saturating_add(index as u64));
        if record.lsn != expected {
            return Err(LogShapeError::NotContiguous {
                index,
                found: record.lsn,
                expected,
            });
        }
        if record.epoch < previous {
            return Err(LogShapeError::EpochGoesBack {
                lsn: record.lsn,
                epoch: record.epoch,
                previous,
            });
        }
        previous = record.epoch;
    }
    Ok(())
}

/// Checks that a fork history (from a peer) describes a log ending at `end_of_log`: segments
/// start inside the log, at strictly increasing LSNs, with strictly increasing epochs, the first
/// one at LSN 1.
pub fn check_fork_history(forks: &[ForkSegment], end_of_log: Lsn) -> Result<(), LogShapeError> {
    for (index, segment) in forks.iter().enumerate() {
        let well_placed = match index {
            0 => segment.first_lsn == Lsn(1),
            _ => {
                let previous = forks[index - 1];
                segment.first_lsn > previous.first_lsn && segment.epoch > previous.epoch
            }
        };
        if !well_placed || segment.first_lsn > end_of_log {
            return Err(LogShapeError::BadForkHistory { index, end_of_log });
        }
    }
    if forks.is_empty() != (end_of_log == Lsn(0)) {
        return Err(LogShapeError::BadForkHistory {
            index: 0,
            end_of_log,
        });
    }
    Ok(())
}

/// The fork point of two logs: the highest LSN up to which they hold the same records.
///
/// Both histories must be well formed ([`check_fork_history`]). The answer is the highest LSN
/// that both logs hold in the same epoch; by the log-matching property of epochs (see
/// [`Epoch`]) everything before it is equal too.
pub fn common_prefix(a: &[ForkSegment], a_end: Lsn, b: &[ForkSegment], b_end: Lsn) -> Lsn {
    let last_of = |forks: &[ForkSegment], index: usize, end: Lsn| -> Lsn {
        forks
            .get(index + 1)
            .map_or(end, |next| Lsn(next.first_lsn.0 - 1))
    };
    let mut best = Lsn(0);
    for (ia, sa) in a.iter().enumerate() {
        for (ib, sb) in b.iter().enumerate() {
            if sa.epoch != sb.epoch {
                continue;
            }
            let low = sa.first_lsn.max(sb.first_lsn);
            let high = last_of(a, ia, a_end).min(last_of(b, ib, b_end));
            if low <= high && high > best {
                best = high;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadr_types::ReplicaId;

    fn e(term: u64, replica: u8) -> Epoch {
        Epoch {
            term,
            replica: ReplicaId(replica),
            generation: 0,
        }
    }

    fn log(epochs: &[Epoch]) -> Vec<LogRecord> {
        epochs
            .iter()
            .enumerate()
            .map(|(i, epoch)| LogRecord {
                lsn: Lsn(i as u64 + 1),
                epoch: *epoch,
                txn: TxnId(i as u32 + 1),
                writes: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn fork_history_has_one_segment_per_epoch_run() {
        let records = log(&[e(1, 0), e(1, 0), e(2, 1), e(4, 0)]);
        assert_eq!(
            fork_history(&records),
            vec![
                ForkSegment {
                    epoch: e(1, 0),
                    first_lsn: Lsn(1)
                },
                ForkSegment {
                    epoch: e(2, 1),
                    first_lsn: Lsn(3)
                },
                ForkSegment {
                    epoch: e(4, 0),
                    first_lsn: Lsn(4)
                },
            ]
        );
        assert!(fork_history(&[]).is_empty());
    }

    /// R-FAIL-4/R-FAIL-6: the former primary wrote records 11-12 in epoch 1 that the new primary
    /// (epoch 2 from LSN 11) never had; the fork point is 10.
    #[test]
    fn r_fail_6_fork_point_is_the_last_record_both_hold_in_the_same_epoch() {
        let new_primary = log(&[&[e(1, 0); 10][..], &[e(2, 1); 5][..]].concat());
        let old_primary = log(&[e(1, 0); 12]);
        let fork = common_prefix(
            &fork_history(&new_primary),
            Lsn(15),
            &fork_history(&old_primary),
            Lsn(12),
        );
        assert_eq!(fork, Lsn(10));
    }

    #[test]
    fn a_prefix_forks_at_its_own_end() {
        let primary = log(&[e(1, 0), e(1, 0), e(2, 1), e(2, 1)]);
        let secondary = log(&[e(1, 0), e(1, 0), e(2, 1)]);
        let fork = common_prefix(
            &fork_history(&primary),
            Lsn(4),
            &fork_history(&secondary),
            Lsn(3),
        );
        assert_eq!(fork, Lsn(3));
        assert_eq!(
            common_prefix(&fork_history(&primary), Lsn(4), &[], Lsn(0)),
            Lsn(0)
        );
    }

    #[test]
    fn logs_of_unrelated_epochs_fork_at_zero() {
        let a = log(&[e(1, 0), e(1, 0)]);
        let b = log(&[e(1, 1)]);
        assert_eq!(
            common_prefix(&fork_history(&a), Lsn(2), &fork_history(&b), Lsn(1)),
            Lsn(0)
        );
    }

    #[test]
    fn malformed_histories_and_runs_are_refused() {
        let bad = [
            ForkSegment {
                epoch: e(2, 0),
                first_lsn: Lsn(1),
            },
            ForkSegment {
                epoch: e(1, 0),
                first_lsn: Lsn(2),
            },
        ];
        assert!(check_fork_history(&bad, Lsn(3)).is_err());
        assert!(check_fork_history(&bad[..1], Lsn(0)).is_err());
        assert!(check_fork_history(&[], Lsn(2)).is_err());
        assert!(check_fork_history(&bad[..1], Lsn(5)).is_ok());

        let mut run = log(&[e(1, 0), e(1, 0)]);
        assert!(check_run(&run, Lsn(0), Epoch::NONE).is_ok());
        assert_eq!(
            check_run(&run, Lsn(1), Epoch::NONE),
            Err(LogShapeError::NotContiguous {
                index: 0,
                found: Lsn(1),
                expected: Lsn(2)
            })
        );
        run[1].epoch = Epoch::NONE;
        assert!(matches!(
            check_run(&run, Lsn(0), Epoch::NONE),
            Err(LogShapeError::EpochGoesBack { .. })
        ));
    }
}
