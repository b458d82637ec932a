// Compile-time exhaustiveness for switches over the generated unions (event kinds, frame types):
// the `default` branch passes the value here, so a variant added in Rust is a `tsc` error until
// every switch handles it. At run time (an older UI talking to a newer runtime) it reports.
export function unhandled(value: never, what: string): void {
  console.warn(`unhandled ${what}`, value);
}
