/**
 * HTTP-date parsing for Date, Expires, Last-Modified and If-Modified-Since.
 * https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
 *
 * Written out rather than left to Date.parse: Date.parse reads the asctime form
 * in the machine's local time zone, and accepts many strings that are not
 * HTTP-dates (a recipient must treat those as invalid: an invalid Expires means
 * "already expired", an invalid If-Modified-Since is ignored).
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

// Sun, 06 Nov 1994 08:49:37 GMT (the preferred form)
const IMF_FIXDATE = /^[a-z]{3}, (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
// Sunday, 06-Nov-94 08:49:37 GMT (obsolete, recipients must accept it)
const RFC850_DATE = /^[a-z]{6,9}, (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
// Sun Nov  6 08:49:37 1994 (obsolete, recipients must accept it)
const ASCTIME_DATE = /^[a-z]{3} ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/** Milliseconds since the epoch, or null when `value` is not an HTTP-date. */
export function parseHttpDate(value: string): number | null {
  const text = value.trim();
  let m = IMF_FIXDATE.exec(text);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(text);
  if (m) return utc(fullYear(Number(m[3])), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = ASCTIME_DATE.exec(text);
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return null;
}

/**
 * A two-digit year more than 50 years in the future is the most recent past
 * year with those digits (RFC 9110 §5.6.7).
 */
function fullYear(twoDigits: number): number {
  const thisYear = new Date().getUTCFullYear();
  let year = Math.floor(thisYear / 100) * 100 + twoDigits;
  if (year > thisYear + 50) year -= 100;
  return year;
}

function utc(year: number, monthName: string, day: number, h: string, min: string, s: string): number | null {
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const hours = Number(h);
  const minutes = Number(min);
  const seconds = Number(s);
  if (month < 0 || day < 1 || day > daysInMonth(year, month)) return null;
  // 60 allows a leap second, as the grammar does.
  if (hours > 23 || minutes > 59 || seconds > 60) return null;
  return Date.UTC(year, month, day, hours, minutes, seconds);
}

function daysInMonth(year: number, month: number): number {
  // Day 0 of the next month is the last day of this one.
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}
