//! The command-line interface's commands beyond `node` and `status` (which `main.rs` runs):
//! each talks to a node's admin API or works on local files.

pub mod cluster;
pub mod name;
pub mod publish;
pub mod system;
