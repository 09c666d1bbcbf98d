// The API, as the console calls it. Every request carries the credential signed in with, as
// a bearer token: never in a URL, where logs and history would keep it. Every failure comes
// back as an ApiError with the server's own code and message, so the console shows exactly
// what curl would.

const STORAGE_KEY = 'rbac-console-credential';

// The API is served where the console is, less `/console`: behind a proxy that mounts the
// server under a prefix, the prefix comes along.
const base = location.pathname.replace(/\/console\/?$/, '');

export class ApiError extends Error {
  constructor(status, code, message, body, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
    this.requestId = requestId;
  }

  // One line for people: the code for searching the docs, the message for reading, and for a
  // failure of the server, the request's id, under which its log tells the cause.
  describe() {
    const id = this.status >= 500 && this.requestId ? `, request ${this.requestId}` : '';
    return `${this.message} (${this.code}${id})`;
  }
}

// The credential of this tab: a token, '' for none (an open server), or null before signing in.
// Session storage ends with the tab, and is not shared with other tabs or sites.
export function credential() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function remember(token) {
  if (token === null) {
    sessionStorage.removeItem(STORAGE_KEY);
  } else {
    sessionStorage.setItem(STORAGE_KEY, token);
  }
}

function headers(token, extra) {
  const all = { Accept: 'application/json', ...extra };
  if (token) {
    all.Authorization = `Bearer ${token}`;
  }
  return all;
}

function url(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== '') {
      query.set(name, String(value));
    }
  }
  const text = query.toString();
  return base + path + (text ? `?${text}` : '');
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(path, { cache: 'no-store', ...init });
  } catch (error) {
    if (error.name === 'AbortError') {
      throw error;
    }
    throw new ApiError(0, 'unreachable', `the server could not be reached (${error.message})`);
  }
  return response;
}

// `used`: the stored credential the request was sent with, if it was; a refusal of it is
// told to the console, unless another has been stored meanwhile.
async function answer(response, used) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A body that is not JSON: the status says what there is to say.
  }
  if (!response.ok) {
    const error = body?.error;
    const refusal = new ApiError(
      response.status,
      error?.code ?? `http_${response.status}`,
      error?.message ?? (response.statusText || `status ${response.status}`),
      body,
      response.headers.get('x-request-id'),
    );
    if (used !== undefined && response.status === 401 && credential() === used) {
      window.dispatchEvent(new CustomEvent('credential-refused', { detail: refusal }));
    }
    throw refusal;
  }
  return body;
}

// GET a JSON answer. `token` overrides the signed-in credential (to try one before keeping it).
export async function get(path, params, { token, signal } = {}) {
  const stored = token === undefined ? credential() : undefined;
  const response = await send(url(path, params), { headers: headers(stored ?? token), signal });
  return answer(response, stored);
}

export async function post(path, body) {
  const used = credential();
  const init = {
    method: 'POST',
    headers: headers(used, { 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  };
  return answer(await send(url(path), init), used);
}

// A tenant's changes as they come, from /watch as Server-Sent Events. EventSource cannot send
// an Authorization header, so the stream is read with fetch. Yields each event as
// {event, data}; returns when the server ends the stream; throws ApiError if it is refused.
export async function* watch(tenant, after, signal) {
  const used = credential();
  const response = await send(url('/watch', { tenant, after }), {
    headers: headers(used, { Accept: 'text/event-stream' }),
    signal,
  });
  if (!response.ok) {
    await answer(response, used);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    yield { event: 'open', data: null };
    yield* events(reader);
  } finally {
    // A consumer that stops early (`break`) closes the stream rather than leave it unread.
    reader.cancel().catch(() => {});
  }
}

async function* events(reader) {
  let buffer = '';
  // A line ending may be CR LF, and a chunk may end between the two.
  let carriage = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    let text = carriage + value;
    carriage = text.endsWith('\r') ? '\r' : '';
    text = carriage ? text.slice(0, -1) : text;
    buffer += text.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) {
          event = line.slice(6).trim();
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
      }
      if (data.length > 0) {
        yield { event, data: JSON.parse(data.join('\n')) };
      }
    }
  }
}
