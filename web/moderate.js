// The moderation page: the chat with delete, mute, ban and pin on every message, slow mode,
// clearing, and the participants (everyone who wrote). Joins as a WHEP viewer with the
// moderator key (from `#key=` or the form), so it also shows a small preview.
//
// For tests: `window.directoState` is 'connecting' | 'ready' | 'reconnecting' | 'error', and
// `window.directoSession` the SDK's Viewer.

import { watch } from '/sdk/directo.js';
import { mountChat } from '/chatview.js';
import { el, fragmentParam, setState, streamFromUrl } from '/page.js';

const $ = (id) => document.getElementById(id);
const stream = streamFromUrl();
/**
 * Everyone seen writing, by name and role (a reconnect gives a user a new id, so the
 * name is what a moderator recognises): key → { id (the latest), name, role }.
 */
const participants = new Map();
let viewer = null;

$('stream-name').textContent = stream || '(no stream)';
document.title = `Moderate · ${stream} · Directo`;

function renderParticipants(messages) {
  for (const m of messages) {
    participants.set(`${m.from.role}:${m.from.name}`, { id: m.from.id, name: m.from.name, role: m.from.role });
  }
  const list = $('participants');
  list.replaceChildren();
  for (const who of participants.values()) {
    const id = who.id;
    const item = el('li');
    item.dataset.user = id;
    item.append(el('span', 'msg-name', who.name));
    if (who.role !== 'viewer') {
      item.append(el('span', `badge badge-${who.role}`, who.role));
    } else {
      const mute = el('button', 'msg-action', 'Mute 5 min');
      mute.type = 'button';
      mute.addEventListener('click', () => act(() => viewer.chat.mute(id, 5)));
      const ban = el('button', 'msg-action action-ban', 'Ban');
      ban.type = 'button';
      ban.addEventListener('click', () => {
        if (confirm(`Ban ${who.name} from this stream?`)) act(() => viewer.chat.ban(id));
      });
      item.append(mute, ban);
    }
    list.append(item);
  }
}

function act(action) {
  try {
    action();
  } catch (error) {
    const notice = $('chat').querySelector('.chat-notice');
    notice.hidden = false;
    notice.textContent = error.message;
  }
}

async function connect(key) {
  setState('connecting', 'Connecting…');
  try {
    viewer = await watch({ stream, token: key, name: 'Moderator', video: $('preview') });
  } catch (error) {
    setState('error', `Error: ${error.message}`);
    $('key-form').hidden = false;
    return;
  }
  window.directoSession = viewer;
  $('key-form').hidden = true;
  mountChat($('chat'), viewer, {
    actions: ['reply', 'delete', 'mute', 'ban', 'pin'],
    onChange: renderParticipants,
  });
  viewer.on('history', ({ slowSeconds }) => ($('slow').value = String(slowSeconds)));
  viewer.on('slow', ({ seconds }) => ($('slow').value = String(seconds)));
  viewer.on('banned', ({ user }) => {
    for (const [key, who] of participants) if (who.id === user) participants.delete(key);
    renderParticipants([]);
  });
  viewer.on('presence', ({ viewers }) => ($('in-chat').textContent = String(viewers)));
  viewer.on('viewers', ({ count }) => ($('viewers').textContent = String(count)));
  viewer.on('status', (status) => ($('live-badge').hidden = !status.live));
  viewer.on('state', (state) => {
    if (state === 'connected') setState('ready', 'Moderating.');
    if (state === 'reconnecting') setState('reconnecting', 'Connection lost, reconnecting…');
  });
  viewer.on('closed', ({ error }) => {
    if (error) setState('error', `Error: ${error.message}`);
  });
  setState(viewer.state === 'connected' ? 'ready' : 'connecting', viewer.state === 'connected' ? 'Moderating.' : 'Connecting…');
}

$('slow').addEventListener('change', () => act(() => viewer.chat.slow(Number($('slow').value))));
$('clear').addEventListener('click', () => {
  if (confirm('Remove every message for everyone?')) act(() => viewer.chat.clear());
});
$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const key = $('key').value.trim();
  history.replaceState(null, '', `#key=${encodeURIComponent(key)}`);
  connect(key);
});
window.addEventListener('pagehide', () => viewer?.close());

if (!stream) {
  setState('error', 'Error: no stream name; open this page as /moderate/NAME#key=KEY');
} else if (fragmentParam('key')) {
  connect(fragmentParam('key'));
} else {
  setState('error', 'Enter the moderator key to moderate this stream.');
  $('key-form').hidden = false;
}
