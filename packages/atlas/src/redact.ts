/** Connection strings may carry passwords: every log line, error and JSON output goes through these. */

/** `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0` (a URL without a password is unchanged). */
export function redact(url: string): string {
  return redactText(url);
}

/** Masks the password of every `scheme://user:password@` in a text (error messages quote URLs too). */
export function redactText(text: string): string {
  return String(text).replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]*)@/gi, '$1***@').replace(/(password=)[^\s&]*/gi, '$1***');
}
