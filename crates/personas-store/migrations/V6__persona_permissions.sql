-- Personas schema, version 6: persona-to-persona permission.
-- A persona's policy (`personas.permissions`, JSON) gains `allow_personas`: the ids of the
-- personas its runs may start (`*` for every one); rows without it read as "none".
-- Executions gain persona_denials: a JSON array of the persona starts the run was refused
-- (`persona_action`, the MCP `run_persona` tool, an addressed event the dispatcher held back),
-- each with the target. It is appended to while the run goes on, by the runner and by the run's
-- MCP server, so it lives beside permission_denials (written once, from the CLI's result line).
ALTER TABLE executions ADD COLUMN persona_denials TEXT NOT NULL DEFAULT '[]';
