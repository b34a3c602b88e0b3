"""Writes the demo corpus (*.txt beside this file): plain English prose made for Pedigree.

The corpus is CC0 (see LICENSE): every sentence pattern and word list below was
written for this project. It composes short stories, how-to notes, customer
support dialogues and insurance claim letters from hand-written parts, seeded,
so the same files come out every time. One paragraph per line.

    python customization/data/corpus/generate.py
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

NAMES = [
    "Anna", "Ben", "Clara", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira",
    "Leo", "Maya", "Noah", "Olga", "Pablo", "Rosa", "Samir", "Tessa", "Victor", "Wendy", "Yusuf",
    "Zoe", "Martin", "Lucy", "Omar", "Priya", "Tom", "Nadia", "Oscar",
]
PLACES = [
    "a small town by the sea", "a busy street in the city", "a farm at the edge of the forest",
    "a quiet village in the hills", "an old house near the river", "a flat above a bakery",
    "a cabin in the mountains", "a narrow street near the harbour", "a garden behind the school",
]
ANIMALS = ["dog", "cat", "horse", "goat", "small bird", "old fox", "white rabbit", "grey donkey"]
OBJECTS = [
    "a red umbrella", "an old map", "a wooden box", "a silver key", "a blue bicycle",
    "a broken clock", "a paper kite", "a jar of honey", "a letter with no stamp", "a green lantern",
]
FEELINGS = ["happy", "tired", "curious", "worried", "proud", "surprised", "calm", "hopeful", "nervous"]
WEATHER = [
    "It was raining softly", "The sun was warm", "A cold wind blew from the north",
    "Snow covered the roads", "The morning was grey and still", "The sky was clear and bright",
]
STORY_MIDDLES = [
    "{name} walked to the market and bought bread, apples and a little cheese.",
    "On the way {pronoun} met a neighbour who asked about the weather and the harvest.",
    "{name} found {object} under the stairs and did not know who had left it there.",
    "The {animal} followed {name} all the way home and waited by the door.",
    "{name} wrote a long letter to a friend who lived far away.",
    "In the evening {pronoun} cooked soup and listened to the radio.",
    "{name} decided to fix the fence before the winter came.",
    "A stranger knocked on the door and asked for directions to the station.",
    "The children in the street were playing a game with a ball and a chalk line.",
    "{name} remembered a song that {possessive} grandmother used to sing.",
    "The old teacher told {name} that patience is a kind of courage.",
    "{name} counted the coins in the jar and smiled, because there was enough for a ticket.",
    "The bus was late, so {name} sat on the bench and read a book.",
    "{name} asked the baker for advice, and the baker laughed and gave {object_pronoun} a warm roll.",
    "When the lights went out, {name} lit a candle and waited for the storm to pass.",
]
STORY_ENDS = [
    "In the end {name} felt {feeling}, and the day was a good one.",
    "That night {name} slept well and dreamed of the sea.",
    "{name} knew that tomorrow would bring something new.",
    "From then on, {name} kept {object} on the shelf by the window.",
    "And so the small trouble of the day was over, and {name} was {feeling} again.",
    "The {animal} stayed, and {name} gave it a name.",
]

TASKS = [
    ("make a cup of tea", [
        "Fill the kettle with fresh water and bring it to the boil.",
        "Warm the pot with a little hot water, then pour it away.",
        "Put one spoon of tea in the pot for each cup.",
        "Pour the boiling water over the tea and wait three to five minutes.",
        "Pour the tea into cups and add milk or lemon if you like.",
    ]),
    ("plant a tomato seedling", [
        "Choose a sunny place that gets at least six hours of light.",
        "Dig a hole deeper than the pot the seedling came in.",
        "Set the plant in the hole and cover the stem with soil up to the first leaves.",
        "Water the soil well, but keep the leaves dry.",
        "Tie the plant to a stick as it grows taller.",
    ]),
    ("change a flat bicycle tyre", [
        "Turn the bicycle upside down so that it rests on the seat and handlebars.",
        "Open the brake and remove the wheel.",
        "Use tyre levers to lift one side of the tyre off the rim.",
        "Pull out the tube, find the hole and replace the tube with a new one.",
        "Push the tyre back onto the rim, pump it up and put the wheel back.",
    ]),
    ("write a clear email", [
        "Start with a short subject line that says what the email is about.",
        "Greet the reader by name.",
        "Say in the first sentence what you need and by when.",
        "Keep each paragraph short and put one idea in each.",
        "End with a polite closing and your name.",
    ]),
    ("reset your password", [
        "Open the sign-in page and choose the link that says you forgot your password.",
        "Enter the email address that belongs to your account.",
        "Open the message we send you and follow the link inside it.",
        "Choose a new password that is long and that you have not used before.",
        "Sign in again with the new password.",
    ]),
    ("report a claim after a car accident", [
        "Make sure everyone is safe and call for help if anyone is hurt.",
        "Take photos of the cars, the road and any damage.",
        "Write down the names, addresses and insurance details of the other drivers.",
        "Call your insurer or fill in the claim form online within a few days.",
        "Keep every receipt for repairs, towing and a rental car.",
    ]),
    ("bake simple bread", [
        "Mix flour, water, salt and a little yeast in a large bowl.",
        "Knead the dough for ten minutes until it is smooth.",
        "Cover the bowl and let the dough rise for about an hour.",
        "Shape the loaf and put it on a tray.",
        "Bake it in a hot oven for thirty to forty minutes until it sounds hollow.",
    ]),
    ("save money each month", [
        "Write down everything you spend for one month.",
        "Decide how much you want to save and move it to a savings account on pay day.",
        "Cook at home more often and plan your meals for the week.",
        "Cancel subscriptions that you do not use.",
        "Check your progress at the end of every month.",
    ]),
    ("prepare for a job interview", [
        "Read about the company and the role before the day.",
        "Think of three examples of work you are proud of.",
        "Practise your answers out loud with a friend.",
        "Arrive a little early and bring a copy of your letter.",
        "Ask one or two questions of your own at the end.",
    ]),
    ("keep a house warm in winter", [
        "Close the curtains when the sun goes down.",
        "Put a draught stopper at the bottom of doors.",
        "Bleed the radiators so that they heat evenly.",
        "Wear a jumper indoors and keep the heating at a steady level.",
        "Check the windows and seal any gaps.",
    ]),
]
TIPS = [
    "Take your time and do not rush the last step.",
    "If something goes wrong, stop and read the steps again.",
    "It gets easier every time you do it.",
    "Ask a friend to help the first time.",
    "Keep the tools you need in one place.",
    "Write down what worked so you remember it next time.",
]

PRODUCTS = ["home insurance", "car insurance", "travel insurance", "pet insurance", "the mobile app",
            "online banking", "the internet router", "the monthly plan", "the phone contract"]
PROBLEMS = [
    ("I cannot sign in to my account.", "I am sorry to hear that. Could you tell me the email address on the account?",
     "I have sent a link to reset your password. It is valid for one hour."),
    ("My bill is higher than last month.", "Let me check that for you. I can see an extra charge for roaming.",
     "I have removed the charge as a one-time gesture. You will see it on your next bill."),
    ("I want to change my address.", "Of course. What is the new address?",
     "Thank you. Your address is updated, and your policy documents will be sent there."),
    ("The app keeps closing when I open it.", "Thank you for telling us. Which version of the app do you have?",
     "Please update to the latest version. That version fixes the problem you describe."),
    ("I would like to cancel my policy.", "I can help with that. May I ask why you want to cancel?",
     "Your policy will end at the end of this month, and you will get a letter to confirm it."),
    ("I made a payment twice by mistake.", "I am sorry about that. I can see two payments on the same day.",
     "I have refunded the second payment. It should reach your account in three to five days."),
    ("How do I add my partner to the policy?", "You can add a named driver in the app or I can do it for you now.",
     "Done. Your partner is now covered, and the price changes by a small amount each month."),
    ("My parcel has not arrived.", "Let me look at the tracking for you. It seems the parcel is at the local depot.",
     "I have asked the depot to deliver it tomorrow morning. You will get a message when it is on the way."),
]
CLOSINGS_AGENT = ["Is there anything else I can help you with today?", "Is there anything else you need?",
                  "Can I help with anything else?"]
CLOSINGS_CUSTOMER = ["No, that is all. Thank you for your help.", "That is everything, thanks a lot.",
                     "No, thank you. Have a nice day."]

CLAIM_EVENTS = [
    ("a burst pipe", "water came through the kitchen ceiling and damaged the floor and two cupboards"),
    ("a storm", "strong wind broke three tiles on the roof and rain came into the bedroom"),
    ("a break-in", "someone forced the back door and took a laptop, a camera and some jewellery"),
    ("a fire in the kitchen", "a pan caught fire and the smoke damaged the walls and the ceiling"),
    ("a car accident", "another car hit the back of my car at a red light and the bumper is broken"),
    ("lost luggage", "my suitcase did not arrive at the airport and I had to buy clothes for the week"),
    ("a fallen tree", "a large branch fell on the garden shed and crushed the roof"),
    ("an illness abroad", "I became ill on holiday and had to see a doctor and stay two nights in hospital"),
]
CLAIM_DOCS = ["photos of the damage", "the repair estimate", "the police report number", "the receipts",
              "the airline's report", "the doctor's letter", "a list of the missing items"]
CLAIM_REPLIES = [
    "We have received your claim and a handler will contact you within two working days.",
    "Your claim is covered by your policy. Please send us the repair invoice when the work is done.",
    "We need a little more information before we can decide. Please send the documents listed below.",
    "An assessor will visit your home next week to look at the damage.",
    "We have approved your claim. The payment, less your excess, will reach your account within five days.",
]


def _pronouns(name: str, rng: random.Random) -> dict[str, str]:
    she = rng.random() < 0.5
    return {"pronoun": "she" if she else "he", "possessive": "her" if she else "his",
            "object_pronoun": "her" if she else "him"}


def story(rng: random.Random) -> str:
    """A short story of five to nine sentences."""
    name = rng.choice(NAMES)
    slots = {"name": name, "animal": rng.choice(ANIMALS), "object": rng.choice(OBJECTS),
             "feeling": rng.choice(FEELINGS), **_pronouns(name, rng)}
    sentences = [f"{rng.choice(WEATHER)} when {name} woke up in {rng.choice(PLACES)}."]
    sentences += [s.format(**slots) for s in rng.sample(STORY_MIDDLES, rng.randint(3, 7))]
    sentences.append(rng.choice(STORY_ENDS).format(**slots))
    text = " ".join(sentences)
    return text[0].upper() + text[1:]


def howto(rng: random.Random) -> str:
    """A how-to note: a title line then numbered steps and a tip."""
    task, steps = rng.choice(TASKS)
    parts = [f"How to {task}."]
    words = ["First", "Next", "Then", "After that", "Finally"]
    for word, step in zip(words, steps, strict=False):
        parts.append(f"{word}, {step[0].lower()}{step[1:]}")
    parts.append(rng.choice(TIPS))
    return " ".join(parts)


def dialogue(rng: random.Random) -> str:
    """A customer support conversation in one paragraph."""
    agent, customer = rng.sample(NAMES, 2)
    product = rng.choice(PRODUCTS)
    ask, check, fix = rng.choice(PROBLEMS)
    lines = [
        f"Agent: Hello, my name is {agent}. How can I help you with {product} today?",
        f"Customer: Hi {agent}. {ask}",
        f"Agent: {check}",
        f"Customer: Yes, my name is {customer}.",
        f"Agent: Thank you, {customer}. {fix}",
        f"Agent: {rng.choice(CLOSINGS_AGENT)}",
        f"Customer: {rng.choice(CLOSINGS_CUSTOMER)}",
    ]
    return " ".join(lines)


def claim(rng: random.Random) -> str:
    """An insurance claim letter and the insurer's reply."""
    name = rng.choice(NAMES)
    event, damage = rng.choice(CLAIM_EVENTS)
    day = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
    docs = rng.sample(CLAIM_DOCS, 2)
    return (
        f"Dear claims team, I am writing to report {event}. On {day} {damage}. "
        f"I have attached {docs[0]} and {docs[1]}. Please tell me what else you need. "
        f"Kind regards, {name}. Reply: Dear {name}, thank you for your message. "
        f"{rng.choice(CLAIM_REPLIES)} Kind regards, the claims team."
    )


def main() -> None:
    """Write the four corpus files."""
    rng = random.Random(2026)
    kinds = {"stories": (story, 300), "howto": (howto, 120), "support_dialogues": (dialogue, 200),
             "insurance_claims": (claim, 150)}
    for name, (make, count) in kinds.items():
        paragraphs = [make(rng) for _ in range(count)]
        (HERE / f"{name}.txt").write_text("\n".join(paragraphs) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
