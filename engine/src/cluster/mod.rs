//! Distributing: the [`coordinator`] that owns runs, the [`worker`]s that run users, the
//! [`hub`] workers connect to and the [`connector`] that keeps a worker linked, their wire
//! [`protocol`], how users are split ([`plan`]) and what a worker keeps of a run its coordinator
//! lost ([`cut_run`]).

pub mod connector;
pub mod coordinator;
pub(crate) mod cut_run;
pub(crate) mod hub;
pub(crate) mod plan;
pub mod protocol;
pub mod worker;
