//! arakoon-chaos: the fault catalogue ([`faults`]), YAML failure drills ([`drill`]), the one
//! drill engine that plays them on every tier ([`director`]: targets resolved once, one judge, a
//! `Backend` per tier), and the local multi-process sandbox ([`sandbox`]): real `arakoon`
//! processes whose peer links pass through fault proxies ([`proxy`]), brought up by [`sandbox_up`] and down by
//! [`sandbox_lifecycle`].

pub mod director;
pub mod drill;
pub mod faults;
pub mod history;
pub mod process;
pub mod proxy;
pub mod real_client;
pub mod sandbox;
pub mod sandbox_control;
pub mod sandbox_corrupt;
pub mod sandbox_drill;
pub mod sandbox_lifecycle;
pub mod sandbox_supervisor;
pub mod sandbox_up;
pub mod sandbox_view;
pub mod watch;
