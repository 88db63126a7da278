// Reads an iCalendar object from stdin with Mozilla's ical.js (the parser Thunderbird
// uses) and prints what a calendar client would see, as JSON on stdout:
//
//   {"method": "REQUEST", "events": [{"uid", "sequence", "status", "method", "summary",
//     "organizer": {"value", "cn"}, "attendees": [{"value", "cn", "partstat", "rsvp",
//     "role", "cutype"}], "recurrence_id", "start_zone", "occurrences": [{"start", "end"}],
//     "location", "url", "conferences": [{"value", "feature", "label", "value_type"}]}]}
//
// Usage: node read_ics.mjs [N] < invite.ics   (N = occurrences to expand, default 10)
//
// Times are UTC ISO strings ("2026-03-01T23:00:00Z"). Recurring events are expanded with
// ical.js's own iterator, which applies RRULE, RDATE and EXDATE and resolves TZIDs with
// the VTIMEZONEs of the same file; VEVENTs with a RECURRENCE-ID replace the occurrence
// they name in their master's expansion, and are listed on their own as well.
// Exit status 2 with a message on stderr when the input cannot be parsed.

import ICAL from "ical.js";

const limit = Number.parseInt(process.argv[2] ?? "10", 10);

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (chunk) => chunks.push(chunk));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

function utc(time) {
  if (!time) {
    return null;
  }
  return time.toJSDate().toISOString().replace(".000Z", "Z");
}

function address(prop) {
  if (!prop) {
    return null;
  }
  const param = (name) => {
    const value = prop.getParameter(name);
    return value === undefined || value === null ? null : String(value);
  };
  return {
    value: String(prop.getFirstValue()),
    cn: param("cn"),
    partstat: param("partstat"),
    rsvp: param("rsvp"),
    role: param("role"),
    cutype: param("cutype"),
  };
}

function occurrences(event) {
  if (!event.isRecurring()) {
    return [{ start: utc(event.startDate), end: utc(event.endDate) }];
  }
  const found = [];
  const iterator = event.iterator();
  for (let next = iterator.next(); next && found.length < limit; next = iterator.next()) {
    const details = event.getOccurrenceDetails(next);
    found.push({ start: utc(details.startDate), end: utc(details.endDate) });
  }
  return found;
}

function describe(component, method, overrides) {
  const event = new ICAL.Event(component, { exceptions: overrides });
  const organizer = address(component.getFirstProperty("organizer"));
  return {
    uid: event.uid,
    sequence: event.sequence ?? 0,
    status: component.getFirstPropertyValue("status"),
    method,
    summary: event.summary,
    organizer: organizer && { value: organizer.value, cn: organizer.cn },
    attendees: component.getAllProperties("attendee").map(address),
    recurrence_id: utc(event.recurrenceId),
    start_zone: event.startDate && event.startDate.zone ? event.startDate.zone.tzid : null,
    occurrences: occurrences(event),
    location: event.location ?? null,
    url: component.getFirstPropertyValue("url") ?? null,
    conferences: component.getAllProperties("conference").map((prop) => ({
      value: String(prop.getFirstValue()),
      feature: prop.getParameter("feature") ?? null,
      label: prop.getParameter("label") ?? null,
      value_type: prop.type,
    })),
  };
}

const text = await readStdin();
let root;
try {
  root = new ICAL.Component(ICAL.parse(text));
} catch (error) {
  process.stderr.write(`ical.js could not parse the input: ${error}\n`);
  process.exit(2);
}

const method = root.getFirstPropertyValue("method");
const vevents = root.getAllSubcomponents("vevent");
const overridesByUid = new Map();
for (const component of vevents) {
  if (component.hasProperty("recurrence-id")) {
    const uid = component.getFirstPropertyValue("uid");
    overridesByUid.set(uid, [...(overridesByUid.get(uid) ?? []), component]);
  }
}

const events = vevents.map((component) => {
  const isOverride = component.hasProperty("recurrence-id");
  const uid = component.getFirstPropertyValue("uid");
  return describe(component, method, isOverride ? [] : overridesByUid.get(uid) ?? []);
});

process.stdout.write(`${JSON.stringify({ method, events }, null, 1)}\n`);
