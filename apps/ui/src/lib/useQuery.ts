// Loads data for a view through the backend, with loading and error state; loads again when the
// inputs change or the event stream says state must be re-read.
import { useCallback, useEffect, useRef, useState } from "react";
import { useApp } from "../stores/app";

export function useQuery<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const epoch = useApp((s) => s.epochVersion);
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setLoading(true);
    load()
      .then((d) => {
        if (mine === seq.current) {
          setData(d);
          setError(null);
        }
      })
      .catch((e: Error) => mine === seq.current && setError(e.message))
      .finally(() => mine === seq.current && setLoading(false));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, epoch]);
  useEffect(run, [run]);
  return { data, error, loading, reload: run, setData };
}
