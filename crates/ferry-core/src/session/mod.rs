//! The session supervisor: a pure state machine ([`machine`]) and the task that executes its
//! actions and publishes one [`event::SessionEvent`] stream.

pub mod machine;
