//! Measuring: what a run asks for ([`scenario`]), the virtual users that do it ([`user`]), the
//! S3 drivers they call ([`driver`]), the bytes they send ([`content`]) and the recorder they
//! write every outcome into ([`stats`]), and the [`run_spec`] a run hands its users.

pub mod arrivals;
pub mod audit;
pub mod content;
pub mod driver;
pub mod precise_timer;
pub(crate) mod run_spec;
pub mod scenario;
pub mod stability;
pub mod stats;
pub mod sweep;
pub mod thread_priority;
pub(crate) mod user;
