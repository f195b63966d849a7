// A caller as the teams Interlock serves write one: Node.js, its built-in fetch, no packages.
// It calls the upstream through Interlock's proxy and prints what it saw as one JSON line.
// Usage: node proxy_client.mjs http://127.0.0.1:PORT
const base = process.argv[2];

async function call(path) {
  const resp = await fetch(`${base}/proxy/crm${path}`, { headers: { Accept: "application/json" } });
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("json") ? await resp.json() : await resp.text();
  return {
    status: resp.status,
    attempts: resp.headers.get("x-interlock-attempts"),
    cache: resp.headers.get("x-interlock-cache"),
    retryAfter: resp.headers.get("retry-after"),
    type,
    body,
  };
}

const seen = {};
seen.retried = await call("/flaky/1");           // the upstream answers 503 first, then 200
seen.first = await call("/industries");          // a cached route: fetched once...
seen.second = await call("/industries");         // ...then answered from the cache
seen.failing = [];
for (let i = 0; i < 3; i++) seen.failing.push(await call("/down/1"));  // opens the breaker
seen.open = await call("/down/2");               // problem details while it is open
console.log(JSON.stringify(seen));
