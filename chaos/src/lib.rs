//! arakoon-chaos: the fault catalogue ([`faults`]), YAML failure drills ([`drill`]), and the
//! local multi-process sandbox ([`sandbox`]): real `arakoon` processes whose peer links pass
//! through fault proxies ([`proxy`]).

pub mod director;
pub mod drill;
pub mod faults;
pub mod process;
pub mod proxy;
pub mod sandbox;
pub mod sandbox_control;
pub mod sandbox_corrupt;
pub mod sandbox_lifecycle;
pub mod sandbox_supervisor;
