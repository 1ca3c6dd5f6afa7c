//! The scaffold on a served model: a [`Backend`] whose completions go through the scheduler,
//! so a run's plan, candidates and judge share the batch with every other client.

use std::sync::Arc;

use super::scheduler::{Scheduler, ServeEvent, ServeRequest};
use k2_scaffold::{Backend, Completion, ScaffoldError};

use crate::backend::completion_after;
use crate::chat::ChatMessage;
use crate::decode::plain::{CancelToken, GenerateOptions, Generation};
use crate::error::EngineError;
use crate::loader::LoadedModel;

pub struct ScheduledBackend {
    model: Arc<LoadedModel>,
    scheduler: Scheduler,
}

impl ScheduledBackend {
    pub fn new(model: Arc<LoadedModel>, scheduler: Scheduler) -> Self {
        ScheduledBackend { model, scheduler }
    }
}

impl Backend for ScheduledBackend {
    fn describe(&self) -> String {
        self.model.info.name.clone()
    }

    fn complete(
        &self,
        messages: &[ChatMessage],
        n: usize,
        options: &GenerateOptions,
        cancel: &CancelToken,
        on_delta: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Completion>, ScaffoldError> {
        let prompt = self.model.chat_prompt(messages, options.effort)?;
        prompt.stream_opening_tag(n, on_delta);
        let request = ServeRequest {
            prompt_ids: prompt.ids.clone(),
            n,
            options: prompt.generate_options(options),
        };
        let mut events = self.scheduler.submit(request, cancel.clone())?;
        let mut rows: Vec<Option<Generation>> = vec![None; n];
        while rows.iter().any(Option::is_none) {
            match events.blocking_recv() {
                Some(ServeEvent::Admitted { .. }) => {}
                Some(ServeEvent::Delta { row, text }) => on_delta(row, &text),
                Some(ServeEvent::Finished { row, generation }) => rows[row] = Some(generation),
                Some(ServeEvent::Failed { message }) => {
                    return Err(EngineError::InvalidSetting(message).into())
                }
                None => {
                    return Err(EngineError::InvalidSetting(
                        "the scheduler stopped before the completion finished".into(),
                    )
                    .into())
                }
            }
        }
        Ok(rows
            .into_iter()
            .flatten()
            .map(|g| completion_after(&prompt, g))
            .collect())
    }
}
