import { Monitor, Moon, Sun } from "lucide-react";
import { useState } from "react";
import { BackendError, backend, errorMessage } from "../backend";
import { Badge, Button, Card, ErrorBox, Field, PageHeader, Spinner, cx, inputClass } from "../components/ui";
import { useQuery } from "../lib/useQuery";
import { type Theme, useApp } from "../stores/app";
import { VaultBanner } from "./Credentials";

export function SettingsPage() {
  const { data, error, reload, setData } = useQuery(() => backend().call("get_settings", {}), []);
  const vault = useQuery(() => backend().call("vault_status", {}), []);
  const theme = useApp((s) => s.theme);
  const setTheme = useApp((s) => s.setTheme);
  const [maxc, setMaxc] = useState<string | null>(null);
  const [cli, setCli] = useState<string | null>(null);
  const [errs, setErrs] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  if (error) return <ErrorBox error={error} retry={reload} />;
  if (!data) return <Spinner />;
  const save = async () => {
    setBusy(true);
    setErrs({});
    try {
      setData(await backend().call("update_settings", { max_concurrent: maxc === null ? undefined : Number(maxc), claude_path: cli === null ? undefined : cli }));
      setMaxc(null);
      setCli(null);
    } catch (e) {
      setErrs({ [e instanceof BackendError && e.field ? e.field : "general"]: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };
  const themes: { t: Theme; icon: typeof Sun; label: string }[] = [
    { t: "light", icon: Sun, label: "Light" },
    { t: "dark", icon: Moon, label: "Dark" },
    { t: "system", icon: Monitor, label: "System" },
  ];
  return (
    <div data-page="settings">
      <PageHeader title="Settings" subtitle={<>Personas {data.version} {data.restart_required && <Badge tone="amber">Restart `personas up` to apply saved changes</Badge>}</>} />
      {errs.general && <ErrorBox error={errs.general} />}
      <div className="grid gap-6 lg:grid-cols-2">
        <Card title="Runtime" className="p-0">
          <div className="space-y-4 p-4">
            <Field label="Data directory" hint={<>Config file: <code>{data.config_file}</code></>}>
              <input className={inputClass} value={data.data_dir} readOnly />
            </Field>
            <Field label="Runs at once" htmlFor="maxc" error={errs.max_concurrent}>
              <input id="maxc" type="number" min={1} max={64} className={inputClass} value={maxc ?? data.max_concurrent} onChange={(e) => setMaxc(e.target.value)} />
            </Field>
            <Field label="Claude CLI path" htmlFor="cli" error={errs.claude_path} hint={data.claude_found ? `Found: ${data.claude_found}` : "Not found — install @anthropic-ai/claude-code or set the path."}>
              <input id="cli" className={inputClass} placeholder="found automatically" value={cli ?? data.claude_path ?? ""} onChange={(e) => setCli(e.target.value)} />
            </Field>
            <Button variant="primary" busy={busy} onClick={save} disabled={maxc === null && cli === null}>Save</Button>
          </div>
        </Card>
        <Card title="Credential vault" className="p-0">
          <div className="p-4 pb-0 text-sm" data-vault-mode={vault.data?.mode}>
            {vault.error && <ErrorBox error={vault.error} retry={vault.reload} />}
            {vault.data && (
              <p className="mb-2">
                Key kept in: <strong>{vault.data.mode === "keychain" ? "the OS keychain" : vault.data.mode === "passphrase" ? "PERSONAS_VAULT_PASSPHRASE (Argon2id)" : "nowhere usable"}</strong> · {vault.data.credentials} credential(s)
              </p>
            )}
            <VaultBanner vault={vault.data} />
          </div>
        </Card>
        <Card title="Appearance" className="p-0">
          <div className="flex gap-2 p-4" role="radiogroup" aria-label="Theme">
            {themes.map(({ t, icon: Icon, label }) => (
              <button key={t} role="radio" aria-checked={theme === t} onClick={() => setTheme(t)} className={cx("flex flex-1 flex-col items-center gap-1 rounded-lg p-3 text-sm ring-1", theme === t ? "ring-2 ring-accent-500" : "ring-zinc-200 dark:ring-zinc-700")}>
                <Icon className="size-5" /> {label}
              </button>
            ))}
          </div>
        </Card>
      </div>
    </div>
  );
}
