//! # hadr-adapters: the systems under test of the conformance harness
//!
//! Each adapter drives an implementation through a scenario behind the harness'
//! [`Sut`](hadr_conformance::sut::Sut) trait, so that `hadr-conformance` can judge it against
//! the spec:
//!
//! - [`reference_sim`] (`--sut reference-sim`): the reference core (hadr-core) in its
//!   deterministic simulated network, in-process and fast; the differential fuzz target runs
//!   it in lock step with the spec. Feature `mutants` plants a bug of the core in it.
//! - [`reference`](mod@reference) (`--sut reference`): the reference replicas as real processes on loopback
//!   (hadr-testbed), with a local etcd for CLUSTER_TYPE EXTERNAL (feature `etcd`).
//! - [`external`] (`--sut external:CMD`): any implementation, through a driver program that
//!   speaks the language-neutral protocol `hadr-adapter/1` (`docs/adapter-protocol.md`); with
//!   its optional capability `processes` ([`external::processes`]) the harness runs the
//!   driver's replica processes and makes their network's faults. The binary
//!   `hadr-sim-driver` of this crate is `reference-sim` behind that protocol.
//!
//! The spec itself run as a system (`--sut spec`) belongs to the harness
//! (`hadr_conformance::model_sut`): the harness depends on the spec and the vocabulary only,
//! and the adapters, which see the implementation, come on top of it.

#![warn(missing_docs)]

pub mod external;
pub mod reference;
pub mod reference_sim;
