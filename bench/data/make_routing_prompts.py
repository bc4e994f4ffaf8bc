# ruff: noqa: E501 - prompt data: each prompt stays on one line, as written
"""Writes bench/data/routing_prompts.jsonl: the labelled prompts bench/routing_eval.py scores.

    python bench/data/make_routing_prompts.py

The prompts are written by hand below; only the long documents (for summaries and long-context
questions) are assembled from hand-written paragraphs so the file stays readable. Output is
deterministic. Labels follow this guideline, decided per prompt without running the router:

  small   chit-chat, simple facts, short rewrites/translations, short summaries, simple
          extraction into JSON, simple classification
  medium  ordinary coding and debugging, tool/function calling, images, textbook math,
          explanations/comparisons needing some analysis, summaries of 2.5k-16k-token texts
  large   proofs and rigorous derivations, hard multi-step reasoning, system design with
          trade-offs, hard algorithmic code with correctness arguments, contexts over 16k tokens
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("routing_prompts.jsonl")

SMALL_CHAT = [
    "hi!", "Good morning, how are you today?", "Thanks, that was helpful.",
    "Tell me a joke about cats.", "What's your favourite colour?", "Can you say hello in French?",
    "I'm bored, suggest something fun to do this evening.", "Who are you?",
    "Write a haiku about autumn leaves.", "Give me a fun fact about octopuses.",
    "What should I name my new goldfish?", "Say something nice to cheer me up.",
    "Recommend a feel-good movie for tonight.", "How do you pronounce 'quinoa'?",
    "What's a good name for a bakery?", "Tell me a short bedtime story about a dragon.",
    "Write a limerick about a sleepy dog.", "What rhymes with orange?",
    "Suggest three birthday gift ideas for my dad.", "Is it pronounced gif or jif?",
    "Give me a tongue twister.", "What's the weather usually like in Lisbon in May?",
    "Write a two-line poem about coffee.", "I just got a new job!",
    "Can you recommend a podcast about history?", "Tell me something interesting about Mars.",
    "What's a good icebreaker question for a team meeting?", "Make up a superhero name for me.",
    "Write a haiku about the Python snake in the zoo.",
    "How many legs does a spider have?", "Suggest a name for a D&D character, an elf ranger.",
    "What's the capital of Australia?", "Good night!", "Write a short thank-you note to my neighbour for watering my plants.",
    "Which is bigger, a blue whale or an elephant?",
]
SMALL_TASKS = [
    "Translate 'Where is the train station?' into Spanish.",
    "Translate this to German: 'The meeting is moved to Thursday at 10.'",
    "Fix the grammar: 'me and him goes to the store yesterday'",
    "Rewrite this more politely: 'Send me the report now.'",
    "Make this sentence shorter: 'At this point in time we are not in a position to make a decision.'",
    "What is the plural of 'cactus'?", "Define the word 'ephemeral'.",
    "Give me a synonym for 'happy'.", "Convert 5 miles to kilometres.",
    "What year did the Berlin Wall fall?", "Who wrote Pride and Prejudice?",
    "Is a tomato a fruit or a vegetable?", "List the planets of the solar system.",
    "What time zone is Tokyo in?", "Spell 'necessary' backwards.",
    "Classify the sentiment of this review as positive or negative: 'The food was cold and the waiter was rude.'",
    "Is this email spam? 'Congratulations! You won a free cruise, click here.'",
    "Write a subject line for an email announcing the office is closed on Friday.",
    "Turn this into a bullet list: eggs, milk, bread, butter.",
    "What does 'FYI' stand for?", "Capitalize this title: the lord of the rings",
    "Give me an antonym of 'generous'.", "How many days are in a leap year?",
    "What is 15% of 80?", "Round 3.14159 to two decimals.",
    "Translate 'good luck' into Japanese.", "Write an out-of-office reply for next week.",
    "Sort these words alphabetically: pear, apple, mango, banana.",
    "Which language is spoken in Brazil?", "Summarize in one sentence: The library will extend its opening hours during exam season, staying open until midnight from Monday to Thursday.",
]
SMALL_SUMMARIES = [
    "Summarize: Our quarterly sales grew 4% thanks to the new product line, while costs stayed flat. The team expects similar growth next quarter.",
    "TL;DR this: The city council voted to add bike lanes on Main Street. Construction starts in spring and will take three months. Parking on one side will be removed.",
    "Give me the gist: Researchers found that people who walk 7,000 steps a day have a lower risk of heart disease than those who walk fewer than 4,000.",
    "Summarize this message from my landlord: Hi, the water will be shut off on Tuesday between 9 and 12 for pipe repairs. Sorry for the inconvenience.",
    "Summarize the plot of Cinderella in two sentences.",
    "Short summary please: The update fixes a crash when opening large files, improves startup time, and adds a dark theme.",
    "Summarize this review: Great battery life, the screen is a bit dim outdoors, and the speakers are surprisingly good for the price.",
    "Condense into one line: The conference has been moved online due to the storm; all sessions will be streamed and recorded.",
    "What's the main point of this: Drinking water before meals may help some people eat less, but the effect is small.",
    "Summarize: The museum is free on the first Sunday of every month, and children under 12 always enter free.",
]
SMALL_JSON = [
    "Extract the name and email from: 'Contact Jane Doe at jane.doe@example.com for details.'",
    "Return the date and amount in this receipt text: 'Paid $42.50 on 2024-03-02 at Corner Cafe.'",
    "Extract city and country: 'I moved to Porto, Portugal last year.'",
    "Pull out the product names mentioned: 'I bought a Kindle and an Echo Dot.'",
    "Give me the sentiment and a confidence score for: 'Absolutely loved it!'",
    "Extract the phone number from: 'Call us at +1 555 0100 during office hours.'",
    "Parse this into fields first_name, last_name, age: 'Maria Lopez, 34'",
    "Extract all hashtags from: 'Loving the #sunset at the #beach today'",
    "What are the ingredients in: 'Mix flour, sugar and two eggs, then add milk.' Return a list.",
    "Extract the order id and status from: 'Order #A1234 has shipped.'",
    "Extract the meeting time and place: 'Let's meet at 3pm in room 204.'",
    "Give the language of each sentence: 'Bonjour', 'Hola', 'Hello'.",
    "Extract the author and year from: 'Orwell, 1949, Nineteen Eighty-Four'.",
    "List the colours mentioned: 'The red car parked next to a blue van and a white truck.'",
    "Turn 'Milk 2, Eggs 12, Bread 1' into an object of item to quantity.",
]
MEDIUM_CODE = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Why does this JavaScript print undefined? ```js\nconst o = {a: 1};\nconsole.log(o.b);\n```",
    "Convert this Python 2 code to Python 3: ```print 'hello'\nraw_input()```",
    "Write a SQL query that returns the top 5 customers by total order value.",
    "Fix the bug: ```python\ndef avg(xs):\n    return sum(xs) / len(xs)\nprint(avg([]))\n```",
    "Write a bash script that renames all .txt files in a folder to .md.",
    "How do I read a CSV file with pandas and drop rows with missing values?",
    "Write a regex that matches a valid hex colour like #1a2b3c.",
    "Explain what this does: ```go\nfor i := range ch { fmt.Println(i) }\n```",
    "Write a React component that shows a counter with + and - buttons.",
    "I get 'TypeError: unhashable type: list' in Python when using a dict. What's wrong?",
    "Write a Dockerfile for a Flask app that listens on port 8000.",
    "How do I reverse a linked list in Java?",
    "Write unit tests with pytest for a function add(a, b).",
    "Refactor this to use a list comprehension: ```python\nout = []\nfor x in xs:\n    if x > 0:\n        out.append(x * 2)\n```",
    "What's the difference between `let` and `var` in JavaScript?",
    "Write a Rust function that returns the largest element of a vector.",
    "My Docker container exits immediately with code 0. How do I debug it?",
    "Write a Python script that downloads a web page and counts the words.",
    "How do I make an HTTP POST request with curl sending JSON?",
    "Write a TypeScript interface for a user with id, name and optional email.",
    "Explain this stack trace: ```\nTraceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    import flask\nModuleNotFoundError: No module named 'flask'\n```",
    "Write a C function that swaps two integers using pointers.",
    "How can I speed up this loop in numpy? ```python\nfor i in range(n): c[i] = a[i] * b[i]```",
    "Write a Kubernetes deployment YAML for nginx with 3 replicas.",
    "Implement binary search in Python and return -1 if not found.",
    "What does `git rebase -i HEAD~3` do?",
    "Write CSS to center a div horizontally and vertically.",
    "How do I handle exceptions in async functions in JavaScript?",
    "Write a Go HTTP server that returns 'ok' on /health.",
]
MEDIUM_MATH = [
    "Solve for x: 3x + 7 = 22.", "What is the derivative of x^3 * sin(x)?",
    "Compute the integral of 2x from 0 to 3.",
    "A bag has 3 red and 5 blue balls. What's the probability of drawing two red balls without replacement?",
    "Find the roots of x^2 - 5x + 6 = 0.", "What is the determinant of the matrix [[2, 1], [4, 3]]?",
    "How many permutations of the letters in 'APPLE' are there?",
    "Calculate the compound interest on $1000 at 5% per year for 3 years.",
    "A triangle has sides 3, 4 and 5. What is its area?",
    "What is the expected value of rolling a fair six-sided die?",
    "Solve the system: x + y = 10, x - y = 2.", "What is log base 2 of 1024?",
]
MEDIUM_ANALYSIS = [
    "Compare renting and buying a home for someone who may move in three years.",
    "Explain why the sky is blue in a way a 12-year-old would understand, with a bit of physics.",
    "What are the pros and cons of remote work for a small startup?",
    "Explain the causes of the 2008 financial crisis.",
    "Analyze the main themes of George Orwell's Animal Farm.",
    "Compare PostgreSQL and MongoDB for an e-commerce catalogue.",
    "Why does inflation hurt people on fixed incomes?",
    "Evaluate this marketing slogan and suggest improvements: 'Fresh coffee, fresh you.'",
    "Explain how vaccines train the immune system.",
    "What would happen if the moon disappeared?",
    "Write a cover letter for a junior data analyst position, highlighting SQL and Excel skills.",
    "Draft a project plan for migrating a team wiki to a new tool in 6 weeks.",
    "Critique this argument: 'Everyone I know likes the product, so it will sell well.'",
    "Explain the difference between weather and climate, with examples.",
    "Write a 300-word blog post about the benefits of learning a second language.",
]
LARGE_PROOFS = [
    "Prove that the square root of 2 is irrational.",
    "Prove by induction that 1 + 2 + ... + n = n(n+1)/2.",
    "Prove that there are infinitely many prime numbers.",
    "Show that every bounded monotone sequence of real numbers converges.",
    "Prove that a group of prime order is cyclic.",
    "Prove that the sum of the angles of a triangle in Euclidean geometry is 180 degrees.",
    "Let f be continuous on [a, b] and differentiable on (a, b). Prove the mean value theorem from Rolle's theorem.",
    "Prove that the harmonic series diverges.",
    "Show that for any integer n, n^3 - n is divisible by 6.",
    "Prove that a tree with n vertices has exactly n - 1 edges.",
    "Derive the formula for the variance of a binomial distribution rigorously.",
    "Prove that there is no largest even number, then prove that the set of even numbers is countable.",
]
LARGE_REASONING = [
    "Design the architecture of a multi-region payment system that must never double-charge. Discuss consistency, idempotency and failure modes with trade-offs.",
    "Think step by step: three boxes are labelled apples, oranges and mixed, all labels are wrong. You may take one fruit from one box. How do you label all boxes correctly? Justify rigorously.",
    "Design a rate limiter for an API gateway serving 1M requests per second across 20 instances. Compare algorithms and justify your choice.",
    "A company wants to cut cloud costs by 40% without hurting latency. Analyze the strategy options step by step and recommend a plan with risks.",
    "Evaluate the trade-offs between event sourcing and a traditional CRUD database for a banking ledger, in depth.",
    "Reason through this puzzle: five people of different nationalities live in five houses... (Einstein's riddle). Explain each deduction.",
    "Critique the methodology of a study that claims coffee causes longevity based on an observational survey of 500 people, and design a better study.",
    "Design a strategy for migrating a 2 TB monolithic PostgreSQL database to a sharded setup with zero downtime. Analyze the risks at each step.",
    "Think carefully: if a bat and a ball cost $1.10 together and the bat costs $1 more than the ball, how much is the ball? Then explain why people get it wrong and what it says about intuition.",
    "Assess the long-term implications of widespread AI coding assistants on software engineering education. Give a rigorous, balanced argument.",
    "Design an architecture for a real-time collaborative text editor. Compare CRDTs and operational transformation, with trade-offs.",
    "Analyze the game-theoretic equilibrium of a two-firm price competition (Bertrand) and explain why the outcome differs from Cournot, step by step.",
]
LARGE_CODE = [
    "Implement a lock-free multi-producer multi-consumer queue in C++ and argue why it is linearizable.",
    "Design and implement in Python an LRU cache with O(1) operations that is safe under concurrent access; analyze its complexity and race conditions step by step.",
    "Write a Rust implementation of the Raft leader election and explain, rigorously, why two leaders cannot exist in the same term.",
    "Implement Dijkstra's algorithm in Java and prove its correctness.",
    "Design a distributed job scheduler in Go with exactly-once execution semantics; explain the architecture and trade-offs, then write the core code.",
    "Write a Python implementation of a B-tree with insertion and deletion, and justify the time complexity of each operation.",
    "Implement a regex engine supporting ., *, + and ? in TypeScript, and reason through its worst-case complexity.",
    "Analyze this code for race conditions and redesign it: ```python\nbalance = 0\ndef deposit(x):\n    global balance\n    tmp = balance\n    balance = tmp + x\n```\nThreads call deposit concurrently. Explain step by step and prove your fix is correct.",
]

# Held out: written after the classifier's cue lists were tuned on the sets above, and never
# used to change them. Its agreement is the honest estimate; the tuning sets' is optimistic.
HOLDOUT: list[tuple[str, str, str]] = [
    ("small", "chit-chat", "hey there, what's up?"),
    ("small", "chit-chat", "Can you recommend a board game for four players?"),
    ("small", "chit-chat", "Write a cheerful birthday message for my sister."),
    ("small", "chit-chat", "What's a good houseplant for a dark room?"),
    ("small", "chit-chat", "Tell me a riddle for kids."),
    ("small", "chit-chat", "I love rainy days. Do you?"),
    ("small", "chit-chat", "Give me three fun facts about penguins."),
    ("small", "simple-task", "Translate 'see you tomorrow' into Italian."),
    ("small", "simple-task", "What's the boiling point of water in Fahrenheit?"),
    ("small", "simple-task", "Correct the spelling: 'recieve', 'definately', 'seperate'."),
    ("small", "simple-task", "Who painted the Mona Lisa?"),
    ("small", "simple-task", "Rewrite in passive voice: 'The cat chased the mouse.'"),
    ("small", "simple-task", "How many ounces are in a pound?"),
    ("small", "simple-task", "Give me a one-word title for a story about a lost key."),
    ("small", "simple-task", "What is 12 times 12?"),
    ("small", "short-summary", "Summarize: The gym will close for renovation from June 1 to "
                               "June 14; members get two weeks added to their subscription."),
    ("small", "short-summary", "In one sentence, what is this about: The school board approved "
                               "a later start time for high schools beginning next autumn."),
    ("small", "simple-task", "Is 'their' or 'there' correct in: '___ going to the park'?"),
    ("small", "chit-chat", "What's the best way to keep cut flowers fresh?"),
    ("small", "simple-task", "Name three countries in South America."),
    ("medium", "code", "Write a JavaScript function that debounces another function."),
    ("medium", "code", "How do I create a virtual environment in Python and install requests?"),
    ("medium", "code", "Why is my SQL query slow? SELECT * FROM orders WHERE "
                       "YEAR(created_at) = 2023"),
    ("medium", "code", "Convert this loop to a map call: for (const u of users) "
                       "names.push(u.name)"),
    ("medium", "code", "Write a shell one-liner to find the 10 largest files in a directory."),
    ("medium", "code", "What does the 'static' keyword mean in C?"),
    ("medium", "code", "Write a Python class for a bank account with deposit and withdraw."),
    ("medium", "code", "My Flask app returns 405 Method Not Allowed on POST. Any idea?"),
    ("medium", "code", "Parse an ISO 8601 date string in Go."),
    ("medium", "math", "What is the probability of getting at least one six in four rolls "
                       "of a die?"),
    ("medium", "math", "Differentiate f(x) = e^(2x) * cos(x)."),
    ("medium", "math", "Find the area of a circle with radius 7 cm."),
    ("medium", "math", "If a train travels 300 km in 2.5 hours, what is its average speed?"),
    ("medium", "analysis", "Explain the difference between a virus and a bacterium."),
    ("medium", "analysis", "What are the advantages and disadvantages of nuclear power?"),
    ("medium", "analysis", "Write a persuasive paragraph on why cities should plant more "
                           "trees."),
    ("medium", "analysis", "How did the printing press change European society?"),
    ("medium", "analysis", "Summarize the key arguments for and against a four-day work "
                           "week."),
    ("medium", "analysis", "Help me prepare for a job interview for a product manager role: "
                           "likely questions and good answers."),
    ("large", "proof", "Prove that the product of two odd integers is odd."),
    ("large", "proof", "Show that the set of rational numbers is countable."),
    ("large", "proof", "Prove that every finite integral domain is a field."),
    ("large", "reasoning", "Design a globally distributed key-value store with tunable "
                           "consistency; discuss replication, partitioning and failure modes."),
    ("large", "reasoning", "We have 12 coins, one counterfeit (heavier or lighter), and a "
                           "balance scale. Find it in three weighings and explain every step."),
    ("large", "reasoning", "Our microservices have cascading failures under load. Propose an "
                           "in-depth plan: circuit breakers, bulkheads, load shedding, and how "
                           "to verify each."),
    ("large", "reasoning", "Compare the long-run economic effects of a carbon tax versus "
                           "cap-and-trade, considering leakage, revenue recycling and "
                           "political feasibility, with a rigorous argument."),
    ("large", "hard-code", "Implement a consistent hashing ring with virtual nodes in Python "
                           "and analyse how keys move when a node joins."),
    ("large", "hard-code", "Write a thread-safe bounded blocking queue in Java and prove it "
                           "cannot deadlock."),
    ("large", "hard-code", "Implement the Aho-Corasick algorithm in C++ and explain its time "
                           "complexity rigorously."),
]

PARAGRAPHS = [
    "The committee met on Tuesday to review the budget for the coming fiscal year. Several members raised concerns about the rising cost of maintenance for the older buildings, and a proposal was made to commission an independent survey before any decision is taken.",
    "Customer feedback collected over the last quarter shows a clear preference for faster delivery over lower prices. Respondents in urban areas were especially sensitive to delays, while rural customers valued reliable tracking information.",
    "The research team reported that the new irrigation method reduced water use by nearly a third in the pilot fields. Yields were comparable to the control plots, although the effect varied with soil type and the timing of the first rainfall.",
    "During the migration, the operations group discovered that several legacy services depended on undocumented configuration files. Each dependency had to be traced by hand, which delayed the schedule by two weeks but avoided a number of outages.",
    "The novel follows a young cartographer who travels to a remote island to map its coastline. Over the course of a year she learns the local language, becomes entangled in a dispute over fishing rights, and questions what it means to draw a border.",
    "Attendance at the public library increased after the introduction of evening opening hours. Staff noted that many visitors used the study rooms, and that demand for digital skills workshops exceeded the number of available places.",
    "The board approved the hiring plan for the engineering department, with a focus on reliability and security roles. The chief technology officer emphasised that the new staff should be onboarded gradually to preserve team culture.",
    "Historians have long debated the economic causes of the decline of the city's textile industry. Competing accounts point to changing trade routes, the arrival of cheaper imports, and the reluctance of local guilds to adopt new machinery.",
]


def document(words: int, seed: int) -> str:
    """About ``words`` words of varied report text (hand-written paragraphs, rotated)."""
    out: list[str] = []
    count = 0
    i = seed
    while count < words:
        paragraph = f"Section {len(out) + 1}. " + PARAGRAPHS[i % len(PARAGRAPHS)]
        out.append(paragraph)
        count += len(paragraph.split())
        i += 3
    return "\n\n".join(out)


def row(label: str, category: str, messages: list[dict[str, Any]], split: str = "tuning",
        **extra: Any) -> dict[str, Any]:
    return {"category": category, "expected_tier": label, "split": split,
            "messages": messages, **extra}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search_orders", "description": "Find a customer's orders",
    "parameters": {"type": "object", "properties": {"email": {"type": "string"}}}}}
TOOL_PROMPTS = [
    "What's the weather in Paris right now?", "Is it raining in Seattle?",
    "Should I take an umbrella in London today?", "Check the temperature in Oslo and Rome.",
    "Find the orders of bob@example.com.", "Did alice@example.com's last order ship?",
    "How many orders has carol@example.com placed?", "Weather in Tokyo, please.",
    "Look up the orders for dave@example.com and tell me the total.",
    "Compare the weather in Madrid and Berlin.", "What's it like outside in Cairo?",
    "Show me recent orders for erin@example.com.", "Is it sunny in Sydney?",
    "Get the weather for New York and suggest what to wear.",
    "Find frank@example.com's orders from last month.",
]
IMAGE_PROMPTS = [
    "What is in this picture?", "Describe this photo in one sentence.",
    "Read the text on this sign.", "What breed is this dog?", "Is this mushroom edible?",
    "Transcribe the handwritten note in the image.", "What's wrong with this circuit board?",
    "Count the people in this photo.", "What colour is the car in the image?",
    "Describe the chart in this screenshot.", "Which landmark is this?",
    "Write alt text for this image.",
]


def image_message(text: str, n: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"https://example.com/img{n}.jpg"}}]}]


def build() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rows += [row(label, category, user(text), split="holdout")
             for label, category, text in HOLDOUT]
    rows.append(row("medium", "tools", user("Where is my package? My email is "
                                            "gina@example.com."), tools=[SEARCH_TOOL],
                    split="holdout"))
    rows.append(row("medium", "image", image_message("Which plant is this, and is it safe "
                                                     "for cats?", 99), split="holdout"))
    rows.append(row("medium", "long-summary", user(
        "Summarise this for the team:\n\n" + document(4_000, 5)), split="holdout"))
    rows.append(row("large", "long-context", user(
        document(13_000, 6) + "\n\nWhich sections disagree with each other?"),
        split="holdout"))
    rows += [row("small", "chit-chat", user(t)) for t in SMALL_CHAT]
    rows += [row("small", "simple-task", user(t)) for t in SMALL_TASKS]
    rows += [row("small", "short-summary", user(t)) for t in SMALL_SUMMARIES]
    rows += [row("small", "json-extraction", user(t),
                 response_format={"type": "json_object"}) for t in SMALL_JSON]
    rows += [row("medium", "code", user(t)) for t in MEDIUM_CODE]
    rows += [row("medium", "math", user(t)) for t in MEDIUM_MATH]
    rows += [row("medium", "analysis", user(t)) for t in MEDIUM_ANALYSIS]
    rows += [row("medium", "tools", user(t),
                 tools=[WEATHER_TOOL if "weather" in t.lower() or "rain" in t.lower()
                        or "sunny" in t.lower() or "umbrella" in t.lower()
                        or "temperature" in t.lower() or "outside" in t.lower()
                        else SEARCH_TOOL]) for t in TOOL_PROMPTS]
    rows += [row("medium", "image", image_message(t, i)) for i, t in enumerate(IMAGE_PROMPTS)]
    for i, words in enumerate((2_500, 3_500, 5_000, 7_000, 9_000)):
        rows.append(row("medium", "long-summary", [
            {"role": "system", "content": "You summarise internal documents for busy readers."},
            {"role": "user", "content": "Summarise the following report in five bullet "
                                        "points:\n\n" + document(words, i)}]))
    rows += [row("large", "proof", user(t)) for t in LARGE_PROOFS]
    rows += [row("large", "reasoning", user(t)) for t in LARGE_REASONING]
    rows += [row("large", "hard-code", user(t)) for t in LARGE_CODE]
    for i, (words, question) in enumerate((
            (11_500, "Which sections mention the library, and what changed there?"),
            (12_000, "List every decision the board or committee took, with its section."),
            (14_000, "Summarise the whole document in ten bullet points."),
            (16_000, "Find contradictions between sections, if any."),
            (20_000, "Write an executive summary of this archive."),
            (12_500, "What does the document say about irrigation?"))):
        rows.append(row("large", "long-context", user(document(words, i) + "\n\n" + question)))
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for item in rows:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} prompts to {OUT}")


if __name__ == "__main__":
    main()
