pub mod bench;
pub mod eval;
pub mod generate;
pub mod history;
pub mod models;
pub mod serve;
pub mod solve;
