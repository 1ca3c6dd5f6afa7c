//! Opening the session store from the synchronous command line: a small tokio runtime whose
//! one worker runs the store's background writer while the engine decodes on the main thread.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args as ClapArgs;
use k2_store::Store;
use tokio::runtime::Runtime;

#[derive(ClapArgs, Debug, Clone)]
pub struct StoreArgs {
    /// The session database [default: $K2_DB, else sessions.db in the K2 Tutor data folder].
    #[arg(long, env = "K2_DB")]
    pub db: Option<PathBuf>,
}

impl StoreArgs {
    pub fn path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(k2_store::default_path)
    }

    /// The runtime and the open store.
    pub fn open(&self) -> Result<(Runtime, Store)> {
        let runtime = runtime()?;
        let store = runtime.block_on(Store::open(self.path()))?;
        Ok((runtime, store))
    }
}

pub fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("k2-store")
        .enable_time()
        .build()
        .context("starting the session store's writer thread")
}
