// The studio replaced the publish page: old links (publish.html?stream=S&key=K) land there,
// with the key moved into the fragment so it never reaches a server log.
const params = new URLSearchParams(location.search);
const stream = params.get('stream') ?? '';
const key = params.get('key');
location.replace(`/studio/${encodeURIComponent(stream)}${key ? `#key=${encodeURIComponent(key)}` : ''}`);
