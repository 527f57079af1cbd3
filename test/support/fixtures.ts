/** The "Sales Qualifier" example request from reference/pi-voice-agents.txt (an acceptance case). */
export const salesQualifier = {
  name: "Sales Qualifier",
  language: "en-US",
  purpose: "Qualify inbound sales leads",
  instructions:
    "You are a friendly sales assistant. Your goal is to understand the prospect's needs and budget before connecting them to the sales team.",
  questions: [
    {
      key: "company_size",
      ask: "How many employees does your company have?",
      type: "enum",
      options: ["1-10", "11-50", "51-200", "201-1000", "1000+"],
    },
    { key: "budget_usd", ask: "What is your approximate monthly budget in USD?", type: "number", min: 0 },
  ],
  behaviors: {
    tone: "friendly",
    max_duration_seconds: 600,
    speaking_pace: "normal",
    require_all_questions: true,
    closing_message: "Great, I'll connect you with our team shortly.",
  },
  output_schema: {
    company_size: "enum:1-10,11-50,51-200,201-1000,1000+",
    budget_usd: "number",
    main_pain_point: "text",
  },
  voice: { name: "Aoede", language_code: "en-US" },
} as const
