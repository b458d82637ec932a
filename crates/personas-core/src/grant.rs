//! What applying a persona file would grant beyond what the persona has now: a broader
//! permission mode, new allowed tools, lifted tool denials, new personas it may start, and the
//! persona's credentials handed to instructions that came from the file. Importing never does
//! any of that silently: the CLI refuses without `--grant` and names each item.
//!
//! Pure: the caller resolves names (persona targets are compared by name, case-insensitively,
//! the form a file carries them in).

use crate::model::{ANY_PERSONA, PermissionMode, PermissionPolicy};
use serde::Serialize;
use std::fmt;

/// What a persona has now.
#[derive(Debug, Clone, Copy)]
pub struct Holding<'a> {
    /// Its policy, `allow_personas` as names.
    pub policy: &'a PermissionPolicy,
    /// Names of the credentials linked to it.
    pub credentials: &'a [String],
}

/// One thing an import would grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "grant", rename_all = "snake_case")]
pub enum Grant {
    /// A broader permission mode (`to` is `bypassPermissions` for full trust).
    PermissionMode {
        from: PermissionMode,
        to: PermissionMode,
    },
    /// Tool rules allowed without asking that were not allowed before.
    AllowedTools { tools: Vec<String> },
    /// Tool rules that were denied and no longer are.
    LiftedDenials { tools: Vec<String> },
    /// Personas it may start that it could not before (`*` for every persona).
    AllowPersonas { personas: Vec<String> },
    /// Credentials linked to the persona, which the file's new instructions would run with.
    Credentials { credentials: Vec<String> },
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::PermissionMode {
                from,
                to: PermissionMode::BypassPermissions,
            } => write!(
                f,
                "full trust (permission mode bypassPermissions, was {})",
                from.as_cli_str()
            ),
            Grant::PermissionMode { from, to } => write!(
                f,
                "permission mode {} (was {})",
                to.as_cli_str(),
                from.as_cli_str()
            ),
            Grant::AllowedTools { tools } => write!(f, "allowed tools {}", tools.join(", ")),
            Grant::LiftedDenials { tools } => {
                write!(f, "no longer denied tools {}", tools.join(", "))
            }
            Grant::AllowPersonas { personas } => {
                let names: Vec<String> = personas
                    .iter()
                    .map(|p| {
                        if p == ANY_PERSONA {
                            "every persona ('*')".to_string()
                        } else {
                            p.clone()
                        }
                    })
                    .collect();
                write!(f, "may start personas {}", names.join(", "))
            }
            Grant::Credentials { credentials } => write!(
                f,
                "the file's instructions run with credentials {}",
                credentials.join(", ")
            ),
        }
    }
}

/// Everything an import would grant; empty when it grants nothing new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Grant::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// What `incoming` grants over `existing` (`None`: a new persona, compared with the default
/// policy, so anything above "default" counts). `prompt_changes` says whether the file replaces
/// the persona's instructions: only then are its credentials handed to text from the file.
pub fn grants(
    existing: Option<Holding<'_>>,
    incoming: &PermissionPolicy,
    prompt_changes: bool,
) -> Grants {
    let default_policy = PermissionPolicy::default();
    let (before, credentials) = match existing {
        Some(h) => (h.policy, h.credentials),
        None => (&default_policy, &[][..]),
    };
    let mut out = Vec::new();
    if PermissionPolicy::mode_rank(incoming.mode) > PermissionPolicy::mode_rank(before.mode) {
        out.push(Grant::PermissionMode {
            from: before.mode,
            to: incoming.mode,
        });
    }
    let new_tools = missing_from(&incoming.allow, &before.allow, str::eq);
    if !new_tools.is_empty() {
        out.push(Grant::AllowedTools { tools: new_tools });
    }
    let lifted = missing_from(&before.deny, &incoming.deny, str::eq);
    if !lifted.is_empty() {
        out.push(Grant::LiftedDenials { tools: lifted });
    }
    if !before.allows_any_persona() {
        let new_targets = missing_from(
            &incoming.allow_personas,
            &before.allow_personas,
            str::eq_ignore_ascii_case,
        );
        if !new_targets.is_empty() {
            out.push(Grant::AllowPersonas {
                personas: new_targets,
            });
        }
    }
    if prompt_changes && !credentials.is_empty() {
        out.push(Grant::Credentials {
            credentials: credentials.to_vec(),
        });
    }
    Grants(out)
}

/// Entries of `list` not found in `base`, in order, without repeats.
fn missing_from(list: &[String], base: &[String], same: fn(&str, &str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        if !base.iter().any(|b| same(b, item)) && !out.iter().any(|o| same(o, item)) {
            out.push(item.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PermissionTemplate;

    fn policy(
        mode: PermissionMode,
        allow: &[&str],
        deny: &[&str],
        personas: &[&str],
    ) -> PermissionPolicy {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PermissionPolicy {
            mode,
            allow: v(allow),
            deny: v(deny),
            allow_personas: v(personas),
        }
    }

    fn holding<'a>(policy: &'a PermissionPolicy, credentials: &'a [String]) -> Option<Holding<'a>> {
        Some(Holding {
            policy,
            credentials,
        })
    }

    #[test]
    fn the_same_policy_grants_nothing() {
        let p = policy(
            PermissionMode::AcceptEdits,
            &["Read"],
            &["WebFetch"],
            &["Reviewer"],
        );
        let creds = vec!["github".to_string()];
        assert!(grants(holding(&p, &creds), &p, false).is_empty());
    }

    #[test]
    fn narrowing_grants_nothing() {
        let before = policy(
            PermissionMode::AcceptEdits,
            &["Read", "Bash"],
            &[],
            &["A", "B"],
        );
        let after = policy(PermissionMode::DontAsk, &["Read"], &["WebFetch"], &["a"]);
        assert_eq!(
            grants(holding(&before, &[]), &after, true),
            Grants::default()
        );
    }

    #[test]
    fn a_new_persona_is_compared_with_the_default_policy() {
        assert!(grants(None, &PermissionPolicy::default(), true).is_empty());
        assert!(
            grants(None, &PermissionTemplate::ReadOnly.policy(), true)
                .0
                .iter()
                .all(|g| matches!(g, Grant::AllowedTools { .. })),
            "read-only's allow-list is still named"
        );
        let full = grants(None, &PermissionTemplate::FullTrust.policy(), true);
        assert_eq!(
            full.0,
            vec![Grant::PermissionMode {
                from: PermissionMode::Default,
                to: PermissionMode::BypassPermissions
            }]
        );
        assert!(full.to_string().contains("full trust"), "{full}");
    }

    #[test]
    fn every_kind_of_escalation_is_named() {
        let before = policy(
            PermissionMode::Default,
            &["Read"],
            &["WebFetch", "Bash"],
            &["Reviewer"],
        );
        let after = policy(
            PermissionMode::AcceptEdits,
            &["Read", "Write", "Write"],
            &["Bash"],
            &["reviewer", "Deployer"],
        );
        let creds = vec!["aws".to_string()];
        let g = grants(holding(&before, &creds), &after, true);
        assert_eq!(
            g.0,
            vec![
                Grant::PermissionMode {
                    from: PermissionMode::Default,
                    to: PermissionMode::AcceptEdits
                },
                Grant::AllowedTools {
                    tools: vec!["Write".into()]
                },
                Grant::LiftedDenials {
                    tools: vec!["WebFetch".into()]
                },
                Grant::AllowPersonas {
                    personas: vec!["Deployer".into()]
                },
                Grant::Credentials {
                    credentials: vec!["aws".into()]
                },
            ]
        );
        let text = g.to_string();
        for needle in ["acceptEdits", "Write", "WebFetch", "Deployer", "aws"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn credentials_count_only_when_the_instructions_change() {
        let p = PermissionPolicy::default();
        let creds = vec!["slack".to_string()];
        assert!(grants(holding(&p, &creds), &p, false).is_empty());
        assert_eq!(grants(holding(&p, &creds), &p, true).0.len(), 1);
    }

    #[test]
    fn any_persona_is_its_own_grant_and_covers_every_name() {
        let none = PermissionPolicy::default();
        let any = policy(PermissionMode::Default, &[], &[], &[ANY_PERSONA]);
        let g = grants(holding(&none, &[]), &any, false);
        assert!(g.to_string().contains("every persona"), "{g}");
        let named = policy(PermissionMode::Default, &[], &[], &["Anyone"]);
        assert!(grants(holding(&any, &[]), &named, false).is_empty());
    }

    #[test]
    fn modes_are_ordered_by_what_they_let_a_run_do() {
        use PermissionMode::*;
        let order = [DontAsk, Plan, Default, AcceptEdits, BypassPermissions];
        for w in order.windows(2) {
            assert!(PermissionPolicy::mode_rank(w[0]) < PermissionPolicy::mode_rank(w[1]));
        }
        assert_eq!(PermissionMode::ALL.len(), order.len());
    }
}
