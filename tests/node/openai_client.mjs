// The official `openai` npm package against chatgate: a streamed parallel tool call and a text answer.
// Usage: node openai_client.mjs BASE_URL MODEL. Prints one JSON object for the Python test to check.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "node-test", maxRetries: 0 });

const tools = [
  { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } },
];

// The SDK's own stream helper accumulates the chunks into a final completion.
const toolRun = client.chat.completions.stream({
  model,
  messages: [{ role: "user", content: "Weather and time please sim:parallel" }],
  tools,
});
const toolCompletion = await toolRun.finalChatCompletion();

const textStream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Hello from Node" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let finish = null;
let usage = null;
for await (const chunk of textStream) {
  for (const choice of chunk.choices) {
    text += choice.delta.content ?? "";
    finish = choice.finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}

const whole = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hello from Node" }] });

console.log(JSON.stringify({
  tool_calls: toolCompletion.choices[0].message.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: JSON.parse(c.function.arguments) })),
  tool_finish: toolCompletion.choices[0].finish_reason,
  text,
  finish,
  usage,
  whole_text: whole.choices[0].message.content,
}));
