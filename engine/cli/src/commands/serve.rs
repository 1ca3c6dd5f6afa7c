//! `k2 serve`: the classroom server (OpenAI-compatible API, the scaffold over SSE, the UI).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use k2_engine::serving::SchedulerConfig;
use k2_server::{ClientLimits, ConnectionLimits, Limits, ServerConfig};

use crate::load::{load, ModelArgs};

#[derive(ClapArgs, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<ServeAction>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on. The default serves this machine only; use 0.0.0.0 to serve a lab.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Bearer token clients must send. Default: K2_SERVE_TOKEN, else the token generated at the
    /// first start (kept in the K2 Tutor data directory, printed when created).
    #[arg(long, env = "K2_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Rows decoded together (all clients' completions; a request with n=3 takes 3).
    #[arg(long, default_value_t = 32)]
    pub max_rows: usize,
    /// Requests allowed to wait for rows; beyond this clients get 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub max_waiting: usize,
    /// Largest max_tokens a request may ask for (also the default).
    #[arg(long, default_value_t = 4096)]
    pub max_tokens_limit: usize,
    /// Largest request body, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub max_body_kib: usize,
    /// Positions per row (prompt + answer), at most the model's context.
    #[arg(long, default_value_t = 8192)]
    pub context: usize,
    /// Prompt tokens processed per step over all new requests (lower: steadier streams for
    /// clients already answering; higher: faster first tokens).
    #[arg(long, default_value_t = 512)]
    pub prefill_budget: usize,
    /// Compute every prompt whole instead of starting from the cached prefix that recent
    /// requests shared (the system prompt and template).
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// The built browser UI to serve at / [default: ui/dist if present].
    #[arg(long)]
    pub ui: Option<PathBuf>,

    /// Where scaffold runs are kept for the app's history [default: $K2_DB, else the session
    /// database in the K2 Tutor data folder].
    #[arg(long, env = "K2_DB")]
    pub db: Option<PathBuf>,

    /// Keep no history of runs.
    #[arg(long)]
    pub no_history: bool,

    /// The class roster: students' names and tokens (`k2 serve roster add NAME` writes it).
    /// Each student's token opens their own runs only; `--token` stays the teacher's.
    #[arg(long, env = "K2_ROSTER")]
    pub roster: Option<PathBuf>,
    /// Every student run is a student-mode run (the lab's lock): hints one at a time, the
    /// solution only when the student asks for it.
    #[arg(long)]
    pub lock_student_mode: bool,
    /// Let students' tokens use /v1/chat/completions (the raw model answers anything,
    /// solutions included; student mode does not apply there).
    #[arg(long)]
    pub student_chat: bool,
    /// The most rungs of a hint ladder a student may open (the worked solution is the last).
    #[arg(long)]
    pub hint_levels: Option<u32>,
    /// The most candidates a student's run may ask for (one student cannot take the batch).
    #[arg(long, default_value_t = 4)]
    pub student_candidates: usize,
    /// The teacher's name on their notes and corrections.
    #[arg(long, default_value = "Teacher")]
    pub teacher_name: String,

    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_s: u64,
    /// Longest pause, in seconds, while a client sends a request body (then 408).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_s: u64,
    /// Seconds a client may stop reading an answer (a stream it reads is never cut).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub write_timeout_s: u64,
    /// Connections open at once; one more is answered 503.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Requests per minute per student token (bursts up to this many); 0: no limit. Beyond
    /// it: 429 with Retry-After.
    #[arg(long, default_value_t = 120)]
    pub rate_per_minute: u32,
    /// Scaffold runs one student may have streaming at once; 0: no limit.
    #[arg(long, default_value_t = 1)]
    pub runs_per_student: usize,
    /// Chat completions one student may have open at once; 0: no limit.
    #[arg(long, default_value_t = 2)]
    pub chats_per_student: usize,
    /// Apply the per-student limits to the teacher's token too (by default it is exempt).
    #[arg(long)]
    pub limit_teacher: bool,
    /// Serve GET /metrics without a token (by default it needs the teacher's).
    #[arg(long)]
    pub metrics_public: bool,
}

#[derive(Subcommand, Debug)]
pub enum ServeAction {
    /// The class roster: add, list and remove students.
    Roster {
        #[command(subcommand)]
        command: RosterCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum RosterCommand {
    /// Adds a student and prints their token (shown this once: the roster keeps only a hash).
    Add {
        name: String,
        #[command(flatten)]
        file: RosterFile,
        /// The server's address as students reach it: prints the link that signs them in.
        #[arg(long)]
        url: Option<String>,
    },
    /// Lists the students (never their tokens).
    List {
        #[command(flatten)]
        file: RosterFile,
    },
    /// Removes a student: their token stops working at once; their runs stay.
    Remove {
        name: String,
        #[command(flatten)]
        file: RosterFile,
    },
}

#[derive(ClapArgs, Debug)]
pub struct RosterFile {
    /// The roster [default: $K2_ROSTER, else roster.toml in the K2 Tutor data folder].
    #[arg(long, env = "K2_ROSTER")]
    pub roster: Option<PathBuf>,
}

impl RosterFile {
    fn path(&self) -> Result<PathBuf> {
        match &self.roster {
            Some(path) => Ok(path.clone()),
            None => k2_server::roster::default_roster_path()
                .context("no data directory to keep the roster in; pass --roster FILE"),
        }
    }
}

fn roster(command: RosterCommand) -> Result<()> {
    use k2_server::roster::{add_student, remove_student, Roster};
    match command {
        RosterCommand::Add { name, file, url } => {
            let path = file.path()?;
            let token = add_student(&path, &name)?;
            crate::outln!("{token}");
            eprintln!(
                "added {} to {} (the token above is shown only now; give it to them)",
                crate::output::safe(&name),
                path.display()
            );
            if let Some(url) = url {
                eprintln!("  their link: {}/#token={token}", url.trim_end_matches('/'));
            }
        }
        RosterCommand::List { file } => {
            let path = file.path()?;
            let roster = Roster::load(&path)?;
            if roster.is_empty() {
                eprintln!("no students in {}", path.display());
            }
            for name in roster.names() {
                crate::outln!("{}", crate::output::safe(name));
            }
        }
        RosterCommand::Remove { name, file } => {
            let path = file.path()?;
            remove_student(&path, &name)?;
            eprintln!(
                "removed {} from {}: their token no longer opens anything",
                crate::output::safe(&name),
                path.display()
            );
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if let Some(ServeAction::Roster { command }) = args.action {
        return roster(command);
    }
    if args.roster.is_some() && args.no_history {
        anyhow::bail!("--roster needs the history (each student's runs are kept under their name): drop --no-history");
    }
    let token = match args.token.clone() {
        Some(token) if token.len() >= 8 => token,
        Some(_) => anyhow::bail!("--token must be at least 8 characters"),
        None => {
            let path = k2_server::token::default_token_path()
                .context("no data directory to keep the server token in; pass --token")?;
            let (token, created) = k2_server::token::load_or_create(&path)
                .with_context(|| format!("cannot keep the server token in {}", path.display()))?;
            if created {
                eprintln!(
                    "generated a token for this server (kept in {}):",
                    path.display()
                );
                eprintln!("  {token}");
            } else {
                eprintln!("token: the one in {}", path.display());
            }
            token
        }
    };
    let model = Arc::new(load(&args.model, false)?);
    let ui_dir = args.ui.clone().or_else(|| {
        let default = PathBuf::from("ui/dist");
        default.join("index.html").is_file().then_some(default)
    });
    let config = ServerConfig {
        address: SocketAddr::new(args.host, args.port),
        token,
        scheduler: SchedulerConfig {
            max_rows: args.max_rows,
            max_waiting: args.max_waiting,
            prefill_budget: args.prefill_budget,
            context: args.context,
            prefix_cache: !args.no_prefix_cache,
        },
        limits: Limits {
            max_body_bytes: args.max_body_kib * 1024,
            max_tokens: args.max_tokens_limit,
        },
        ui_dir,
        db: (!args.no_history).then(|| args.db.clone().unwrap_or_else(k2_store::default_path)),
        connections: ConnectionLimits {
            header_timeout: Duration::from_secs(args.header_timeout_s),
            body_timeout: Duration::from_secs(args.body_timeout_s),
            write_timeout: Duration::from_secs(args.write_timeout_s),
            max_connections: args.max_connections as usize,
        },
        clients: ClientLimits {
            rate_per_minute: args.rate_per_minute,
            runs_per_client: args.runs_per_student,
            chats_per_client: args.chats_per_student,
            limit_teacher: args.limit_teacher,
        },
        metrics_public: args.metrics_public,
        roster: args.roster.clone(),
        class_policy: k2_server::ClassPolicy {
            lock_student_mode: args.lock_student_mode,
            student_chat: args.student_chat,
            hint_levels: args.hint_levels,
            student_candidates: args.student_candidates,
        },
        teacher_name: args.teacher_name.clone(),
    };
    let model_name = model.info.name.clone();
    let ui_link_token = config.ui_dir.as_ref().map(|_| config.token.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("k2-serve")
        .build()?;
    runtime
        .block_on(k2_server::serve(model, config, |address| {
            // Tests and scripts wait for this line.
            crate::eoutln!("k2 serve: serving {model_name} at http://{address}");
            if let Some(token) = &ui_link_token {
                // The token rides in the fragment: browsers never send it to the server.
                eprintln!("  open the app: http://{address}/#token={token}");
            }
            if address.ip().is_loopback() {
                eprintln!("  (this machine only; --host 0.0.0.0 serves the lab)");
            }
        }))
        .context("the server stopped")?;
    Ok(())
}
