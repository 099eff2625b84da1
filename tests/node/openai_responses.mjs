// The official `openai` npm package against chatgate's Responses API: a streamed function call, its
// continuation by previous_response_id, retrieval, and a plain text answer.
// Usage: node openai_responses.mjs BASE_URL MODEL. Prints one JSON object for the Python test to check.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "node-test", maxRetries: 0 });

const tools = [
  { type: "function", name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] }, strict: false },
];

// The SDK's stream helper checks the events' order and builds the final response from them.
const stream = client.responses.stream({ model, input: "Weather in Oslo?", tools });
const sequence = [];
for await (const event of stream) sequence.push(event.sequence_number);
const first = await stream.finalResponse();
const call = first.output.find((item) => item.type === "function_call");

const second = await client.responses.create({
  model,
  previous_response_id: first.id,
  input: [{ type: "function_call_output", call_id: call.call_id, output: "snow" }],
  tools,
});
const retrieved = await client.responses.retrieve(second.id);
const inputItems = await client.responses.inputItems.list(second.id);
const text = await client.responses.create({ model, input: "Hello from Node", store: false });

// A custom (free-form) tool, streamed: its input arrives as text deltas.
const patchTool = { type: "custom", name: "apply_patch", description: "Edit files", format: { type: "text" } };
const customEvents = [];
const customStream = await client.responses.create({ model, input: "Patch it", tools: [patchTool], tool_choice: "required", stream: true, store: false });
for await (const event of customStream) customEvents.push(event);
const customItem = customEvents.find((e) => e.type === "response.output_item.done").item;

// An image and a JSON schema answer.
const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1Pe";
const image = await client.responses.create({
  model,
  store: false,
  input: [{ role: "user", content: [{ type: "input_text", text: "What is it?" }, { type: "input_image", image_url: `data:image/png;base64,${png}` }] }],
});
const structured = await client.responses.create({
  model,
  store: false,
  input: "Where?",
  text: { format: { type: "json_schema", name: "place", schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }, strict: true } },
});

// Reasoning carried statelessly: the encrypted item goes back with the tool output.
const reasoningSettings = { model, tools, store: false, include: ["reasoning.encrypted_content"], reasoning: { effort: "high", summary: "auto" } };
const thought = await client.responses.create({ ...reasoningSettings, input: "Weather in Bergen?" });
const thoughtCall = thought.output.find((item) => item.type === "function_call");
const afterThought = await client.responses.create({
  ...reasoningSettings,
  input: [{ role: "user", content: "Weather in Bergen?" }, ...thought.output, { type: "function_call_output", call_id: thoughtCall.call_id, output: "windy" }],
});

// Deletion, an upstream error, and a failure after the stream started.
await client.responses.delete(second.id);
let deletedStatus = null;
try { await client.responses.retrieve(second.id); } catch (error) { deletedStatus = error.status; }
let errorName = null;
try { await client.responses.create({ model, input: "sim:status=429", store: false }); } catch (error) { errorName = error.constructor.name; }
const failing = await client.responses.create({ model, input: "sim:words=20 sim:error_after=3", stream: true, store: false });
const failingTypes = [];
for await (const event of failing) failingTypes.push(event.type);

console.log(JSON.stringify({
  sequence,
  call: { name: call.name, arguments: JSON.parse(call.arguments), call_id: call.call_id },
  first_status: first.status,
  second_text: second.output_text,
  second_previous: second.previous_response_id,
  first_id: first.id,
  retrieved_text: retrieved.output_text,
  text: text.output_text,
  input_item_types: inputItems.data.map((item) => item.type),
  custom: { type: customItem.type, name: customItem.name, input: customItem.input },
  custom_deltas: customEvents.filter((e) => e.type === "response.custom_tool_call_input.delta").map((e) => e.delta).join(""),
  image_status: image.status,
  structured: JSON.parse(structured.output_text),
  reasoning: thought.output.filter((item) => item.type === "reasoning").map((item) => Boolean(item.encrypted_content) && item.summary.length > 0),
  after_thought: afterThought.output_text,
  deleted_status: deletedStatus,
  error_name: errorName,
  failing_tail: failingTypes.slice(-2),
}));
