//! Continuous batching on a real model (SmolLM2-135M): requests that join and leave a shared
//! batch at different steps must decode exactly what each would decode alone, finish on their
//! own, free their rows when their client goes away, and be refused clearly when the queue is
//! full.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::Device;
use k2_engine::chat::ChatMessage;
use k2_engine::decode::batched::{generate_batch, BatchOptions};
use k2_engine::decode::plain::{CancelToken, GenerateOptions, Generation, StopReason};
use k2_engine::decode::sample::SamplingParams;
use k2_engine::loader::{load_model, LoadedModel};
use k2_engine::serving::{Scheduler, SchedulerConfig, ServeEvent, ServeRequest};
use k2_engine::EngineError;
use tokio::sync::mpsc::UnboundedReceiver;

const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";

fn model() -> Arc<LoadedModel> {
    static MODEL: OnceLock<Arc<LoadedModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = k2_engine::models_dir::models_dir().join(SMOLLM2);
            assert!(
                path.exists(),
                "test model {} is missing: run scripts/fetch-test-models.sh first",
                path.display()
            );
            Arc::new(load_model(&path, &Device::Cpu, &mut |_| {}).expect("the test model loads"))
        })
        .clone()
}

fn chat_tokens(question: &str) -> Vec<u32> {
    let lm = model();
    let text = lm
        .template
        .render(&[ChatMessage::user(question)], true)
        .unwrap();
    lm.tokenizer.encode_prompt(&text, true).unwrap()
}

fn options(temperature: f32, seed: u64, max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature,
            top_p: 0.95,
            seed,
            ..Default::default()
        },
        max_tokens,
        stop: Vec::new(),
        ..GenerateOptions::default()
    }
}

/// What the request's rows decode alone, in a batch of their own.
fn alone(request: &ServeRequest) -> Vec<Generation> {
    let lm = model();
    let batch = BatchOptions {
        n: request.n,
        generate: request.options.clone(),
    };
    generate_batch(
        &lm.model,
        &lm.tokenizer,
        &request.prompt_ids,
        &batch,
        &CancelToken::new(),
        &mut |_, _| {},
    )
    .unwrap()
}

/// Every event of a request until all its rows finished: (streamed text per row, results).
fn collect(events: &mut UnboundedReceiver<ServeEvent>, n: usize) -> (Vec<String>, Vec<Generation>) {
    let mut texts = vec![String::new(); n];
    let mut rows: Vec<Option<Generation>> = vec![None; n];
    let mut admitted = false;
    while rows.iter().any(Option::is_none) {
        match events
            .blocking_recv()
            .expect("the scheduler ends every row")
        {
            ServeEvent::Admitted { queue_seconds } => {
                assert!(!admitted && queue_seconds >= 0.0);
                admitted = true;
            }
            ServeEvent::Delta { row, text } => {
                assert!(admitted, "text before admission");
                texts[row].push_str(&text)
            }
            ServeEvent::Finished { row, generation } => {
                assert!(rows[row].is_none(), "row {row} finished twice");
                rows[row] = Some(generation)
            }
            ServeEvent::Failed { message } => panic!("request failed: {message}"),
        }
    }
    (texts, rows.into_iter().flatten().collect())
}

#[test]
fn requests_joining_and_leaving_decode_exactly_as_alone() {
    let scheduler = Scheduler::start(
        model(),
        SchedulerConfig {
            max_rows: 8,
            max_waiting: 16,
            // As plain prefill: every prompt here goes in one pass, as it does alone.
            prefill_budget: 512,
            context: 2048,
            // Prompts computed whole, as alone (a cached prefix was computed in another
            // request's pass, whose shape rounds differently).
            prefix_cache: false,
        },
    )
    .unwrap();
    let requests = [
        ServeRequest {
            prompt_ids: chat_tokens("What is 7 times 8?"),
            n: 1,
            options: options(0.0, 0, 40),
        },
        ServeRequest {
            prompt_ids: chat_tokens("Name three prime numbers and explain why they are prime."),
            n: 3,
            options: options(1.0, 11, 60),
        },
        ServeRequest {
            prompt_ids: chat_tokens("Write one sentence about triangles."),
            n: 2,
            options: options(0.8, 5, 25),
        },
        ServeRequest {
            prompt_ids: chat_tokens("What is the square root of 144?"),
            n: 1,
            options: options(0.0, 0, 70),
        },
    ];
    // Staggered arrivals: later requests join a batch that is already decoding, and the
    // short ones leave while others go on.
    let mut receivers = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(60));
        }
        receivers.push(
            scheduler
                .submit(request.clone(), CancelToken::new())
                .unwrap(),
        );
    }
    let mut served_tokens = 0;
    for (request, mut events) in requests.iter().zip(receivers) {
        let (texts, served) = collect(&mut events, request.n);
        served_tokens += served.iter().map(|g| g.token_ids.len()).sum::<usize>() as u64;
        let expected = alone(request);
        for (row, (got, want)) in served.iter().zip(&expected).enumerate() {
            assert_eq!(
                got.token_ids, want.token_ids,
                "row {row} differs from decoding alone"
            );
            assert_eq!(got.text, want.text);
            assert_eq!(got.stop_reason, want.stop_reason);
            assert_eq!(texts[row], got.text, "streamed text is the row's text");
        }
    }
    assert_eq!(scheduler.load().active_rows, 0);
    // The totals a server's /metrics reports: every prompt, every sampled token (a row's
    // stop token may be sampled without being kept), one first token per request.
    let stats = scheduler.stats();
    let prompts: usize = requests.iter().map(|r| r.prompt_ids.len()).sum();
    assert_eq!(stats.prompt_tokens, prompts as u64);
    let rows: u64 = requests.iter().map(|r| r.n as u64).sum();
    assert!(
        (served_tokens..=served_tokens + rows).contains(&stats.generated_tokens),
        "{} generated, {served_tokens} served",
        stats.generated_tokens
    );
    assert_eq!(stats.first_token.count, requests.len() as u64);
    assert!(stats.first_token.sum_seconds > 0.0 && stats.step_seconds > 0.0);
    assert_eq!(stats.refused_busy, 0);
    scheduler.shutdown();
}

#[test]
fn a_client_that_goes_away_frees_its_rows() {
    let scheduler = Scheduler::start(model(), SchedulerConfig::default()).unwrap();
    let long = ServeRequest {
        prompt_ids: chat_tokens("Tell a very long story about numbers."),
        n: 2,
        options: options(1.0, 3, 2000),
    };
    let mut events = scheduler.submit(long.clone(), CancelToken::new()).unwrap();
    // Wait until it decodes, then hang up.
    loop {
        if let ServeEvent::Delta { .. } = events.blocking_recv().unwrap() {
            break;
        }
    }
    drop(events);
    let deadline = Instant::now() + Duration::from_secs(10);
    while scheduler.load().active_rows > 0 {
        assert!(Instant::now() < deadline, "rows were not freed");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A cancelled request gets every row back as cancelled.
    let cancel = CancelToken::new();
    let mut events = scheduler.submit(long, cancel.clone()).unwrap();
    loop {
        if let ServeEvent::Delta { .. } = events.blocking_recv().unwrap() {
            break;
        }
    }
    cancel.cancel();
    let (_, rows) = collect_after_admission(&mut events, 2);
    assert!(rows.iter().all(|g| g.stop_reason == StopReason::Cancelled));
    assert!(rows.iter().all(|g| g.token_ids.len() < 2000));
    scheduler.shutdown();
}

/// [`collect`] for a receiver whose `Admitted` event was already read.
fn collect_after_admission(
    events: &mut UnboundedReceiver<ServeEvent>,
    n: usize,
) -> (Vec<String>, Vec<Generation>) {
    let mut rows: Vec<Option<Generation>> = vec![None; n];
    while rows.iter().any(Option::is_none) {
        match events
            .blocking_recv()
            .expect("the scheduler ends every row")
        {
            ServeEvent::Finished { row, generation } => rows[row] = Some(generation),
            ServeEvent::Failed { message } => panic!("request failed: {message}"),
            _ => {}
        }
    }
    (Vec::new(), rows.into_iter().flatten().collect())
}

#[test]
fn a_full_queue_is_refused_with_a_retry_estimate_and_bad_requests_are_rejected() {
    let scheduler = Scheduler::start(
        model(),
        SchedulerConfig {
            max_rows: 1,
            max_waiting: 1,
            prefill_budget: 64,
            context: 256,
            prefix_cache: true,
        },
    )
    .unwrap();
    let busy = ServeRequest {
        prompt_ids: chat_tokens("Count to one thousand."),
        n: 1,
        options: options(1.0, 1, 200),
    };
    let first = scheduler.submit(busy.clone(), CancelToken::new()).unwrap();
    // Wait until the first occupies the only row, so the second waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while scheduler.load().active_rows == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = scheduler.submit(busy.clone(), CancelToken::new()).unwrap();
    match scheduler.submit(busy.clone(), CancelToken::new()) {
        Err(EngineError::Busy { retry_after_s, .. }) => assert!(retry_after_s >= 1),
        other => panic!("expected busy, got {:?}", other.map(|_| ())),
    }
    assert!(scheduler.check_room().is_err());
    assert_eq!(scheduler.stats().refused_busy, 2, "each refusal is counted");

    let too_long = ServeRequest {
        prompt_ids: vec![1; 300],
        ..busy.clone()
    };
    assert!(matches!(
        scheduler.submit(too_long, CancelToken::new()),
        Err(EngineError::PromptTooLong { .. })
    ));
    let too_many_rows = ServeRequest { n: 2, ..busy };
    assert!(matches!(
        scheduler.submit(too_many_rows, CancelToken::new()),
        Err(EngineError::InvalidSetting(_))
    ));
    drop((first, second));
    scheduler.shutdown();
}

#[test]
fn rows_that_fill_the_context_end_with_context_full() {
    let prompt = chat_tokens("Write a long essay about geometry.");
    let context = prompt.len() + 10;
    let scheduler = Scheduler::start(
        model(),
        SchedulerConfig {
            context,
            ..SchedulerConfig::default()
        },
    )
    .unwrap();
    let request = ServeRequest {
        prompt_ids: prompt,
        n: 1,
        options: GenerateOptions {
            sampling: SamplingParams {
                temperature: 0.0,
                ..Default::default()
            },
            max_tokens: 500,
            stop: Vec::new(),
            ..GenerateOptions::default()
        },
    };
    let mut events = scheduler.submit(request, CancelToken::new()).unwrap();
    let (_, rows) = collect(&mut events, 1);
    // Unless the model ended its answer first, the row stops where the context is full.
    if rows[0].stop_reason != StopReason::EndOfGeneration {
        assert_eq!(rows[0].stop_reason, StopReason::ContextFull);
        assert!(rows[0].token_ids.len() <= 11);
    }
    scheduler.shutdown();
}

#[test]
fn a_prompt_prefix_shared_by_requests_is_computed_once() {
    let scheduler = Scheduler::start(model(), SchedulerConfig::default()).unwrap();
    let lm = model();
    let system = "You are a patient mathematics tutor for a class of students preparing for \
                  competitions. Explain every step, check the arithmetic twice, and end with \
                  the final answer in a box.";
    let prompt = |question: &str| {
        let text = lm
            .template
            .render(
                &[ChatMessage::system(system), ChatMessage::user(question)],
                true,
            )
            .unwrap();
        lm.tokenizer.encode_prompt(&text, true).unwrap()
    };
    let questions = ["What is 2 + 2?", "What is 3 * 5?", "What is 10 - 7?"];
    let prompts: Vec<Vec<u32>> = questions.iter().map(|q| prompt(q)).collect();
    let shared = prompts[0]
        .iter()
        .zip(&prompts[1])
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared > 30, "the system prompt is shared: {shared} tokens");
    for (i, ids) in prompts.iter().enumerate() {
        let request = ServeRequest {
            prompt_ids: ids.clone(),
            n: 1,
            options: options(0.0, 0, 24),
        };
        let mut events = scheduler.submit(request, CancelToken::new()).unwrap();
        let (texts, rows) = collect(&mut events, 1);
        assert!(!texts[0].is_empty());
        assert_eq!(rows[0].stats.prompt_tokens, ids.len());
        let reused = scheduler.load().reused_prompt_tokens;
        match i {
            // The first two requests show the prefix is shared; the third starts from it.
            0 | 1 => assert_eq!(reused, 0),
            _ => {
                let with_third = prompts[1]
                    .iter()
                    .zip(&prompts[2])
                    .take_while(|(a, b)| a == b)
                    .count();
                assert_eq!(reused, shared.min(with_third) as u64)
            }
        }
    }
    scheduler.shutdown();
}

#[test]
fn a_row_started_from_a_cached_prefix_continues_exactly_like_its_source() {
    let lm = model();
    let prompt = chat_tokens("Explain why the sum of two odd numbers is even.");
    let mut cache = lm.model.new_cache(None);
    cache.add_row().unwrap();
    lm.model
        .forward(&mut cache, &[&prompt], k2_engine::model::LogitsFor::Last)
        .unwrap();
    // A second row made from the first row's cached prompt, in a cache of its own.
    let prefix = cache.prefix_of(0, prompt.len()).unwrap();
    let mut other = lm.model.new_cache(None);
    other.add_row_from(&prefix, prompt.len()).unwrap();
    let next = [prompt[3], prompt[5], prompt[7]];
    let original = lm
        .model
        .forward(&mut cache, &[&next], k2_engine::model::LogitsFor::All)
        .unwrap()[0]
        .to_vec2::<f32>()
        .unwrap();
    let copied = lm
        .model
        .forward(&mut other, &[&next], k2_engine::model::LogitsFor::All)
        .unwrap()[0]
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(original, copied, "same cached keys and values, same logits");
}
