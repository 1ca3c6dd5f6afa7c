//! The verifier model for "Check my work" in the history (`k2 serve`, the desktop app): the
//! history's [`WorkReviewer`] over a model [`Backend`], the judge/planner of the front end's
//! models. The model decodes on a blocking thread (`spawn_blocking`), never on the async
//! executor's workers, as runs do.

use std::sync::Arc;

use k2_history::{ReviewFuture, WorkReview, WorkReviewer};
use k2_scaffold::work_review::review_checked_work;
use k2_scaffold::{Backend, CancelToken};

/// Reviews checked work with one backend.
pub struct ModelWorkReviewer {
    backend: Arc<dyn Backend>,
}

impl ModelWorkReviewer {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        ModelWorkReviewer { backend }
    }
}

impl WorkReviewer for ModelWorkReviewer {
    fn review(&self, review: WorkReview) -> ReviewFuture<'_> {
        let backend = self.backend.clone();
        Box::pin(async move {
            let unreviewed = review.check.clone();
            let reviewed = tokio::task::spawn_blocking(move || {
                review_checked_work(
                    backend.as_ref(),
                    &review.problem,
                    review.solution.as_deref(),
                    &review.work,
                    review.check,
                    &review.withheld,
                    &CancelToken::new(),
                )
            })
            .await;
            reviewed.unwrap_or_else(|e| {
                tracing::error!("the work review stopped: {e}");
                unreviewed
            })
        })
    }
}
