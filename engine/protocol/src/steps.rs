//! A stored run cut at the end of each of its stages, so a teacher can step through it and see
//! what the student saw at each point (replaying the events up to there).

use crate::{Event, RunEvent, Stage};

/// A point to stop at: the stage that ends there (`None`: the whole run), and how many of the
/// run's events lead up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageStep {
    pub stage: Option<Stage>,
    pub events: usize,
}

/// The end of each stage the run went through (a stage ends where the next one begins), then
/// the whole run. A stage that runs to the end of the log is the whole run.
pub fn stage_steps(events: &[Event]) -> Vec<StageStep> {
    let starts: Vec<(usize, Stage)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.kind {
            RunEvent::Stage { stage } => Some((i, *stage)),
            _ => None,
        })
        .collect();
    let mut steps: Vec<StageStep> = starts
        .iter()
        .enumerate()
        .filter(|(_, (_, stage))| *stage != Stage::Done)
        .map(|(k, (_, stage))| StageStep {
            stage: Some(*stage),
            events: starts.get(k + 1).map_or(events.len(), |(next, _)| *next),
        })
        .filter(|step| step.events < events.len())
        .collect();
    steps.push(StageStep {
        stage: None,
        events: events.len(),
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, kind: RunEvent) -> Event {
        Event {
            seq,
            elapsed_ms: 0,
            kind,
        }
    }

    #[test]
    fn each_stage_ends_where_the_next_begins() {
        let stage = |seq, stage| event(seq, RunEvent::Stage { stage });
        let delta = |seq| event(seq, RunEvent::PlanDelta { text: "x".into() });
        let events = vec![
            stage(0, Stage::Planning),
            delta(1),
            stage(2, Stage::Solving),
            delta(3),
            stage(4, Stage::Verifying),
            delta(5),
            stage(6, Stage::Done),
            event(7, RunEvent::Cancelled),
        ];
        let steps: Vec<(Option<Stage>, usize)> = stage_steps(&events)
            .iter()
            .map(|s| (s.stage, s.events))
            .collect();
        assert_eq!(
            steps,
            [
                (Some(Stage::Planning), 2),
                (Some(Stage::Solving), 4),
                (Some(Stage::Verifying), 6),
                (None, 8)
            ]
        );
    }

    #[test]
    fn a_run_stopped_in_its_first_stage_has_one_step() {
        let events = vec![
            event(
                0,
                RunEvent::Stage {
                    stage: Stage::Planning,
                },
            ),
            event(1, RunEvent::PlanDelta { text: "x".into() }),
        ];
        assert_eq!(
            stage_steps(&events),
            [StageStep {
                stage: None,
                events: 2
            }]
        );
        assert_eq!(stage_steps(&[]).len(), 1);
    }
}
