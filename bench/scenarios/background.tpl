# Everyday chat added to every scenario's user (as {name}) before its own sessions, so a fact
# competes with ordinary conversation: greetings, filler, and details that answer nothing asked.
@ 2023-11-04 10:00
Assistant: Hi {name}! Nice to meet you. What would you like help with today?
{name}: Hi! Mostly planning my week, and maybe some recipes.
Assistant: Happy to help. What kind of food do you like?
{name}: Anything quick, I don't have much time on weeknights.
Assistant: Sheet-pan dinners are quick: roast vegetables and a protein together.
{name}: Perfect.
Assistant: Anything else on your mind?
{name}: My neighbour's renovation is driving me mad, drilling every morning at eight.
Assistant: That sounds exhausting. Earplugs might help until it's done.
{name}: lol yes
@ 2023-11-18 19:00
{name}: Hey! Can you recommend a film for tonight?
Assistant: Of course. Do you prefer something light or something serious?
{name}: Something light, it has been a long week at work.
Assistant: A comedy like Paddington 2 is warm and funny.
{name}: Sounds good, I'll watch it with popcorn.
Assistant: Enjoy the film!
{name}: See you there.
Assistant: Have a great evening.
@ 2023-12-09 09:30
Assistant: Good morning {name}, how are you today?
{name}: Good, thanks. The weather is grey and windy, typical December.
Assistant: A good day for staying in. Any plans for the holidays?
{name}: Probably a quiet few days, some board games and long lunches.
Assistant: That sounds relaxing. Which games do you like?
{name}: Ticket to Ride mostly, my friends get very competitive.
Assistant: Noted.
{name}: Thanks for the chat, talk soon.
