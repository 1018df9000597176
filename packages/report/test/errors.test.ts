/** Bad input to @sp/report is a typed one-line SpError (BAD_INPUT), like the rest of the library. */
import { SpError } from '@sp/core/light';
import { probeReportHtml, rankReportHtml, reportHtml } from '@sp/report';

function spError(fn: () => unknown): SpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SpError);
    expect((e as SpError).code).toBe('BAD_INPUT');
    expect((e as SpError).message).not.toMatch(/\n/);
    return e as SpError;
  }
  throw new Error('expected an SpError');
}

test('report builders refuse bad input with SpError', () => {
  expect(spError(() => reportHtml('t', [{ id: '1 bad', heading: 'x' }])).message).toMatch(/report section id "1 bad" must be letters/);
  expect(spError(() => rankReportHtml({})).message).toMatch(/give rankings and\/or watch results/);
  expect(spError(() => probeReportHtml([])).message).toMatch(/no probe results/);
});
