//! `portcullis reviews`: access reviews of a role's eligible and active assignments. Create
//! one (its first round opens at once; `--every` repeats it), list reviews or the items you
//! review (`--to-decide`), show a review or a round, keep or remove an item with a reason,
//! open a round now, close one early, delete a review.

use anyhow::{Result, bail};
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::{
    CreateReviewRequest, ReviewDecisionRequest, ReviewItemView, ReviewRoundView, ReviewView,
};

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum ReviewsCommand {
    /// Create a review of a role's assignments; its first round opens at once.
    Create {
        /// The role under review.
        #[arg(long)]
        role: String,
        /// Only assignments at this scope (default: every scope).
        #[arg(long)]
        scope: Option<String>,
        /// group:NAME (a role-assignable group), user:NAME or managers.
        #[arg(long)]
        reviewers: String,
        /// For managers: who reviews principals without a manager (group:NAME or user:NAME).
        #[arg(long)]
        fallback: Option<String>,
        /// A new round every so often (90d); without it, further rounds only with `start`.
        #[arg(long)]
        every: Option<String>,
        /// How long a round stays open (default 14d).
        #[arg(long)]
        duration: Option<String>,
        /// What undecided items get when a round closes: remove or keep.
        #[arg(long = "default", value_parser = ["remove", "keep"])]
        default_decision: String,
    },
    /// Every review with its rounds, or (--to-decide) the items you review in open rounds.
    List {
        #[arg(long)]
        to_decide: bool,
    },
    /// A review (rv_…) with its rounds, or a round (rr_…) with its items.
    Show { id: String },
    /// Keep or remove an item of a round (applied when the round closes).
    Decide {
        /// The round (rr_…).
        round: String,
        /// The assignment under review (a_…).
        assignment: String,
        #[arg(long, conflicts_with = "remove", required_unless_present = "remove")]
        keep: bool,
        #[arg(long)]
        remove: bool,
        /// Why (required; recorded).
        #[arg(long)]
        reason: String,
    },
    /// Open a round of a review now.
    Start { id: String },
    /// Close a round now: undecided items get the default, removals are applied.
    Close { round: String },
    /// Delete a review (an open round is cancelled; nothing is applied).
    Delete { id: String },
}

pub async fn run(c: &Client, output: Output, cmd: &ReviewsCommand) -> Result<()> {
    match cmd {
        ReviewsCommand::Create {
            role,
            scope,
            reviewers,
            fallback,
            every,
            duration,
            default_decision,
        } => {
            let r = c
                .create_review(&CreateReviewRequest {
                    role: role.clone(),
                    scope: scope.clone(),
                    reviewers: reviewers.clone(),
                    fallback: fallback.clone(),
                    every: every.clone(),
                    duration: duration.clone(),
                    default_decision: default_decision.clone(),
                })
                .await?;
            print_reviews(output, &[r])
        }
        ReviewsCommand::List { to_decide: true } => {
            print_items(output, &c.my_review_items().await?)
        }
        ReviewsCommand::List { to_decide: false } => print_reviews(output, &c.reviews().await?),
        ReviewsCommand::Show { id } if id.starts_with("rr_") => {
            print_round(output, &c.review_round(id).await?)
        }
        ReviewsCommand::Show { id } => print_reviews(output, &[c.review(id).await?]),
        ReviewsCommand::Decide {
            round,
            assignment,
            keep,
            remove,
            reason,
        } => {
            let decision = match (keep, remove) {
                (true, false) => "keep",
                (false, true) => "remove",
                _ => bail!("give --keep or --remove"),
            };
            let item = c
                .decide_review_item(
                    round,
                    assignment,
                    &ReviewDecisionRequest {
                        decision: decision.into(),
                        reason: reason.clone(),
                    },
                )
                .await?;
            print_items(output, &[item])
        }
        ReviewsCommand::Start { id } => print_reviews(output, &[c.start_review(id).await?]),
        ReviewsCommand::Close { round } => print_round(output, &c.close_review_round(round).await?),
        ReviewsCommand::Delete { id } => {
            c.delete_review(id).await?;
            if output == Output::Table {
                println!("review {id} deleted");
            }
            Ok(())
        }
    }
}

fn print_reviews(output: Output, reviews: &[ReviewView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&reviews);
    }
    let rows = reviews
        .iter()
        .map(|r| {
            let open = r.rounds.iter().find(|x| x.state == "open");
            vec![
                r.id.clone(),
                r.role.clone(),
                r.scope.clone(),
                match &r.fallback {
                    Some(f) => format!("{} (else {f})", r.reviewers),
                    None => r.reviewers.clone(),
                },
                r.every.clone().unwrap_or_else(|| "once".into()),
                r.duration.clone(),
                r.default_decision.clone(),
                match open {
                    Some(o) => format!(
                        "{} open until {}: {}/{} decided",
                        o.id, o.closes_at, o.decided, o.items
                    ),
                    None if !r.enabled => "deleted".into(),
                    None => r
                        .next_round_at
                        .clone()
                        .unwrap_or_else(|| "none open".into()),
                },
            ]
        })
        .collect();
    table(
        &[
            "id",
            "role",
            "scope",
            "reviewers",
            "every",
            "duration",
            "default",
            "round",
        ],
        rows,
    );
    Ok(())
}

fn item_rows(items: &[ReviewItemView]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|i| {
            vec![
                i.round_id.clone(),
                i.assignment_id.clone(),
                i.principal.clone(),
                format!("{} at {}", i.role, i.scope),
                i.kind.clone(),
                i.reviewer.clone(),
                match (&i.decision, &i.reason) {
                    (Some(d), Some(r)) => format!("{d}: {r}"),
                    (Some(d), None) => d.clone(),
                    (None, _) if i.can_decide => "to decide".into(),
                    (None, _) => "undecided".into(),
                },
                i.outcome.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

const ITEM_HEADER: &[&str] = &[
    "round",
    "assignment",
    "principal",
    "role",
    "kind",
    "reviewer",
    "decision",
    "applied",
];

fn print_items(output: Output, items: &[ReviewItemView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&items);
    }
    if items.is_empty() {
        println!("nothing to review");
        return Ok(());
    }
    table(ITEM_HEADER, item_rows(items));
    Ok(())
}

fn print_round(output: Output, r: &ReviewRoundView) -> Result<()> {
    if output == Output::Json {
        return print_json(r);
    }
    println!(
        "round {} of review {} ({} at {}): {}, opened {}, closes {}{}; undecided items get {}",
        r.id,
        r.review_id,
        r.role,
        r.scope,
        r.state,
        r.opened_at,
        r.closes_at,
        r.closed_at
            .as_deref()
            .map(|c| format!(", closed {c}"))
            .unwrap_or_default(),
        r.default_decision
    );
    if !r.items.is_empty() {
        table(ITEM_HEADER, item_rows(&r.items));
    }
    Ok(())
}
