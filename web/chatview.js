// The chat panel every page shows: the message list (text as text), the pinned message,
// replies, the send form, and per-message buttons (reply for everyone; delete, mute, ban
// and pin where the page moderates). It follows a session of the SDK, so after a
// reconnect the server's fresh `history` simply redraws it.

import { el, formatClock } from './page.js';

/**
 * Wires `session`'s chat to the panel `root`, which holds `.chat-list`, `.chat-pinned`,
 * `.chat-form` (with `input` and a submit button), `.chat-replying` and `.chat-notice`.
 *
 * `options.actions` lists the buttons on each message: any of `reply`, `delete`, `mute`,
 * `ban`, `pin`. `options.onChange(messages)` hears every change (participants lists).
 * Returns `{ attach(session) }` to follow a new session (the watch page's name change).
 */
export function mountChat(root, session, options = {}) {
  const actions = options.actions ?? ['reply'];
  const list = root.querySelector('.chat-list');
  const pinned = root.querySelector('.chat-pinned');
  const form = root.querySelector('.chat-form');
  const input = form?.querySelector('input, textarea');
  const replying = root.querySelector('.chat-replying');
  const notice = root.querySelector('.chat-notice');
  let replyTo = null;
  let current = session;
  let unsubscribe = [];

  const byId = () => new Map(current.chat.messages.map((m) => [m.id, m]));

  function showNotice(text) {
    if (!notice) return;
    notice.textContent = text;
    notice.hidden = !text;
  }

  function setReply(message) {
    replyTo = message;
    if (!replying) return;
    replying.replaceChildren();
    replying.hidden = !message;
    if (!message) return;
    replying.append(el('span', null, `Replying to ${message.from.name}: `), el('q', null, clip(message.text, 80)));
    const cancel = el('button', 'link', 'Cancel');
    cancel.type = 'button';
    cancel.addEventListener('click', () => setReply(null));
    replying.append(cancel);
    input?.focus();
  }

  function button(label, action, handler) {
    const b = el('button', `msg-action action-${action}`, label);
    b.type = 'button';
    b.dataset.action = action;
    b.addEventListener('click', () => {
      try {
        handler();
      } catch (error) {
        showNotice(error.message);
      }
    });
    return b;
  }

  function renderMessage(message, all) {
    const item = el('li', 'msg');
    item.dataset.id = message.id;
    item.dataset.user = message.from.id;
    item.dataset.role = message.from.role;
    if (message.from.role === 'presenter') item.classList.add('from-presenter');
    if (message.from.id === current.sessionId) item.classList.add('mine');
    if (message.reply_to) {
      item.classList.add('is-reply');
      const parent = all.get(message.reply_to);
      const quote = el('div', 'msg-quote');
      quote.append(
        el('span', 'msg-quote-arrow', '↪ '),
        parent ? el('b', null, parent.from.name) : el('i', null, 'a removed message'),
      );
      if (parent) quote.append(el('span', null, ` ${clip(parent.text, 60)}`));
      item.append(quote);
    }
    const head = el('div', 'msg-head');
    head.append(el('span', 'msg-name', message.from.name));
    if (message.from.role !== 'viewer') head.append(el('span', `badge badge-${message.from.role}`, message.from.role));
    const time = el('time', 'msg-time', formatClock(message.ts));
    time.dateTime = new Date(message.ts).toISOString();
    head.append(time);
    item.append(head, el('p', 'msg-text', message.text));
    const bar = el('div', 'msg-actions');
    for (const action of actions) {
      const chat = current.chat;
      if (action === 'reply') bar.append(button('Reply', 'reply', () => setReply(message)));
      if (action === 'delete') bar.append(button('Delete', 'delete', () => chat.delete(message.id)));
      if (action === 'pin') bar.append(button('Pin', 'pin', () => chat.pin(message.id)));
      if (action === 'mute' && message.from.role === 'viewer') {
        bar.append(button('Mute 5 min', 'mute', () => chat.mute(message.from.id, 5)));
      }
      if (action === 'ban' && message.from.role === 'viewer') {
        bar.append(
          button('Ban', 'ban', () => {
            if (confirm(`Ban ${message.from.name} from this stream?`)) chat.ban(message.from.id);
          }),
        );
      }
    }
    if (bar.childElementCount) item.append(bar);
    return item;
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }

  function redraw() {
    const stick = nearBottom();
    const all = byId();
    list.replaceChildren(...current.chat.messages.map((m) => renderMessage(m, all)));
    root.classList.toggle('chat-empty', current.chat.messages.length === 0);
    renderPinned();
    if (stick) list.scrollTop = list.scrollHeight;
    options.onChange?.(current.chat.messages);
  }

  function append(message) {
    const stick = nearBottom() || message.from.id === current.sessionId;
    list.append(renderMessage(message, byId()));
    root.classList.remove('chat-empty');
    if (stick) list.scrollTop = list.scrollHeight;
    options.onChange?.(current.chat.messages);
  }

  function renderPinned() {
    if (!pinned) return;
    const message = current.chat.pinned;
    pinned.replaceChildren();
    pinned.hidden = !message;
    if (!message) return;
    pinned.append(el('span', 'pin-label', 'Pinned'), el('b', null, `${message.from.name}: `), el('span', null, message.text));
    if (actions.includes('pin')) pinned.append(button('Unpin', 'unpin', () => current.chat.pin(null)));
  }

  function follow(next) {
    unsubscribe.forEach((off) => off());
    current = next;
    unsubscribe = [
      next.on('history', redraw),
      next.on('chat', append),
      next.on('deleted', ({ id }) => {
        list.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.remove();
        if (replyTo?.id === id) setReply(null);
        renderPinned();
        options.onChange?.(current.chat.messages);
      }),
      next.on('cleared', redraw),
      next.on('banned', ({ name }) => {
        showNotice(`${name} was banned.`);
        redraw();
      }),
      next.on('pinned', renderPinned),
      next.on('muted', ({ user, name, until }) => {
        const minutes = Math.max(1, Math.round((until - Date.now()) / 60000));
        showNotice(user === current.sessionId ? `You are muted for ${minutes} min.` : `${name} is muted for ${minutes} min.`);
      }),
      next.on('slow', ({ seconds }) => showNotice(seconds ? `Slow mode: one message every ${seconds} s.` : 'Slow mode is off.')),
      next.on('error', (error) => showNotice(error.message)),
    ];
    redraw();
  }

  form?.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    try {
      current.chat.send(text, { replyTo: replyTo?.id });
      input.value = '';
      setReply(null);
      showNotice('');
    } catch (error) {
      showNotice(error.message);
    }
  });

  follow(session);
  return { attach: follow };
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
