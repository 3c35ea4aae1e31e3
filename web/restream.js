// The studio's "Also stream to" panel: add RTMP(S) destinations (YouTube, Facebook,
// LinkedIn, Twitch with their ingest URLs filled in, or any URL), see each one's status
// live (the API is polled every 2 s) and stop one. The publish key (or publisher token)
// typed in the studio is the credential; stream keys are never shown back unmasked.

/** Ingest URLs of the services; LinkedIn gives each event its own URL. */
const SERVICES = {
  youtube: { name: 'YouTube', url: 'rtmps://a.rtmps.youtube.com:443/live2' },
  facebook: { name: 'Facebook', url: 'rtmps://live-api-s.facebook.com:443/rtmp/' },
  linkedin: { name: 'LinkedIn', url: '', placeholder: 'paste the Stream URL LinkedIn shows' },
  twitch: { name: 'Twitch', url: 'rtmps://live.twitch.tv:443/app' },
  custom: { name: '', url: '', placeholder: 'rtmp://host/app or rtmps://host/app' },
};

const STATUS_TEXT = {
  waiting: 'Waiting for you to go live',
  connecting: 'Connecting…',
  live: 'Live',
  retrying: 'Retrying',
  failed: 'Failed',
};

function formatBitrate(bps) {
  if (!bps) return '';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

function formatUptime(seconds) {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return `${m}:${String(s).padStart(2, '0')}`;
}

/**
 * Mounts the panel. `credential()` returns the publish key or token typed in the studio.
 */
export function mountRestream({ stream, credential, root = document }) {
  const $ = (id) => root.getElementById(id);
  const service = $('restream-service');
  const url = $('restream-url');
  const key = $('restream-key');
  const once = $('restream-once');
  const list = $('restream-list');
  const error = $('restream-error');
  const api = `/api/streams/${encodeURIComponent(stream)}/restreams`;

  const headers = (json) => {
    const h = {};
    const token = credential();
    if (token) h.Authorization = `Bearer ${token}`;
    if (json) h['Content-Type'] = 'application/json';
    return h;
  };
  const showError = (text) => {
    error.hidden = !text;
    error.textContent = text || '';
  };
  const pickService = () => {
    const chosen = SERVICES[service.value];
    url.value = chosen.url;
    url.placeholder = chosen.placeholder || '';
  };
  service.addEventListener('change', pickService);
  pickService();

  async function refresh() {
    if (!credential()) {
      list.replaceChildren();
      return;
    }
    try {
      const response = await fetch(api, { headers: headers(false) });
      if (!response.ok) return;
      render(await response.json());
    } catch {
      // The next poll tries again.
    }
  }

  function render(destinations) {
    list.replaceChildren(
      ...destinations.map((d) => {
        const item = document.createElement('li');
        item.dataset.status = d.status;
        item.dataset.id = d.id;
        const title = document.createElement('b');
        title.textContent = d.name;
        const detail = document.createElement('span');
        detail.className = 'restream-detail';
        detail.textContent = `${d.url} · key ${d.key}${d.once ? ' · this time only' : ''}`;
        const status = document.createElement('span');
        status.className = 'restream-status';
        let text = STATUS_TEXT[d.status] ?? d.status;
        if (d.status === 'live') {
          text += [formatBitrate(d.bitrate_bps), d.uptime_s != null ? formatUptime(d.uptime_s) : '']
            .filter(Boolean)
            .map((part) => ` · ${part}`)
            .join('');
        }
        if (d.error && d.status !== 'live') text += `: ${d.error}`;
        status.textContent = text;
        const stop = document.createElement('button');
        stop.type = 'button';
        stop.className = 'danger';
        stop.textContent = 'Stop';
        stop.addEventListener('click', async () => {
          stop.disabled = true;
          const response = await fetch(`${api}/${encodeURIComponent(d.id)}`, {
            method: 'DELETE',
            headers: headers(false),
          }).catch(() => null);
          if (!response?.ok) showError('Could not stop that destination; try again.');
          refresh();
        });
        item.append(title, ' ', status, document.createElement('br'), detail, ' ', stop);
        return item;
      }),
    );
  }

  $('restream-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!credential()) {
      showError('Type your publish key above first.');
      return;
    }
    const body = {
      url: url.value.trim(),
      key: key.value.trim(),
      name: SERVICES[service.value].name || undefined,
      once: once.checked,
    };
    try {
      const response = await fetch(api, { method: 'POST', headers: headers(true), body: JSON.stringify(body) });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        showError(problem.message || `The server said ${response.status}.`);
        return;
      }
      showError('');
      key.value = '';
      refresh();
    } catch (e) {
      showError(`Could not reach the server (${e.message}).`);
    }
  });

  refresh();
  return setInterval(refresh, 2000);
}
