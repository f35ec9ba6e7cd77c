/**
 * The default model's pre-training text: short, simple English stories for small children, written
 * by a seeded generator (the project writes its own corpus; nothing is downloaded).
 *
 * Every story has a hero (a child or an animal with a name), a place, often a friend, a parent and a
 * thing, and follows one of several plots: a lost toy, learning to share, getting over a fear, a new
 * friend, helping someone, building something, a small adventure, a rainy day, not listening. Each
 * step of a plot has several phrasings; articles ("a"/"an"), plurals, pronouns and past tenses come
 * from the word tables, so every sentence is grammatical. Most stories end with a small moral.
 *
 * `generateCorpus(seed, n)` returns n stories of about 50–150 words (average ~100 words, ~550
 * characters); the same seed gives the same stories, and story i does not depend on n.
 */
import { Rng } from "../../src/util/rng.js";

// ---------------------------------------------------------------------------------------------
// Words

interface Kind {
  /** "girl", "rabbit", ... */
  noun: string;
  plural: string;
  animal: boolean;
  /** Things this kind of hero likes to do (verb phrase, present, after "to"). */
  hobbies?: string[];
  /** Sound an animal makes, for dialogue colour ("Woof!"). */
  sound?: string;
}

const GIRL_NAMES = [
  "Lily",
  "Mia",
  "Emma",
  "Sara",
  "Anna",
  "Lucy",
  "Ella",
  "Zoe",
  "Amy",
  "Ruby",
  "Rosa",
  "Nina",
  "Kate",
  "Maya",
  "Grace",
  "Ivy",
  "Jane",
  "Molly",
  "Daisy",
  "Hannah",
  "Sophie",
  "Clara",
  "Alice",
  "Bella",
];
const BOY_NAMES = [
  "Tom",
  "Ben",
  "Max",
  "Sam",
  "Leo",
  "Jack",
  "Tim",
  "Finn",
  "Noah",
  "Jake",
  "Luke",
  "Oscar",
  "Theo",
  "Adam",
  "Eli",
  "Owen",
  "Danny",
  "Bob",
  "Joe",
  "Pete",
  "Henry",
  "Jimmy",
  "Oliver",
  "Timmy",
];
const PET_NAMES = [
  "Spot",
  "Fluffy",
  "Coco",
  "Buddy",
  "Pepper",
  "Sunny",
  "Patch",
  "Ziggy",
  "Bubbles",
  "Rusty",
  "Snowy",
  "Dotty",
  "Button",
  "Nutmeg",
  "Whiskers",
  "Hoppy",
  "Ginger",
  "Biscuit",
  "Pebble",
  "Shadow",
  "Pip",
];

const CHILD_HOBBIES = [
  "play with a ball",
  "draw pictures",
  "sing songs",
  "run in the grass",
  "read books",
  "look at the stars",
  "pick flowers",
  "jump in puddles",
  "ride a bike",
  "build with blocks",
  "dance",
  "play games with friends",
  "help in the garden",
  "climb trees",
  "bake cookies with mom",
  "paint pictures",
];

/** What each animal eats and where it lives: told in the stories, and asked about in the Pip data. */
export interface AnimalFacts {
  one: string;
  many: string;
  food: string;
  /** "in the forest", "on the farm". */
  home: string;
  /** What it says ("Woof"), if anything. */
  sound?: string;
  /** Birds: described with feathers and a beak. */
  feathers?: boolean;
}

export const ANIMAL_FACTS: AnimalFacts[] = [
  { one: "cat", many: "cats", food: "fish and milk", home: "in a warm house", sound: "Meow" },
  { one: "kitten", many: "kittens", food: "fish and milk", home: "in a warm house", sound: "Meow" },
  { one: "dog", many: "dogs", food: "meat and big bones", home: "in a house with a yard", sound: "Woof" },
  {
    one: "puppy",
    many: "puppies",
    food: "meat and big bones",
    home: "in a house with a yard",
    sound: "Woof",
  },
  { one: "rabbit", many: "rabbits", food: "carrots and grass", home: "in a hole in the ground" },
  { one: "bunny", many: "bunnies", food: "carrots and grass", home: "in a hole in the ground" },
  {
    one: "bird",
    many: "birds",
    food: "seeds and bugs",
    home: "in a nest in the trees",
    sound: "Tweet",
    feathers: true,
  },
  {
    one: "duck",
    many: "ducks",
    food: "bugs and plants",
    home: "by the pond",
    sound: "Quack",
    feathers: true,
  },
  { one: "frog", many: "frogs", food: "bugs", home: "by the pond", sound: "Ribbit" },
  { one: "fox", many: "foxes", food: "mice and berries", home: "in the forest" },
  { one: "bear", many: "bears", food: "honey and fish", home: "in the forest" },
  { one: "mouse", many: "mice", food: "cheese and seeds", home: "in a little hole", sound: "Squeak" },
  { one: "owl", many: "owls", food: "mice and bugs", home: "in a tall tree", sound: "Hoot", feathers: true },
  { one: "squirrel", many: "squirrels", food: "nuts", home: "in the trees" },
  { one: "turtle", many: "turtles", food: "leaves and bugs", home: "by the pond" },
  { one: "pig", many: "pigs", food: "apples and corn", home: "on the farm", sound: "Oink" },
  { one: "cow", many: "cows", food: "grass", home: "on the farm", sound: "Moo" },
  { one: "lamb", many: "lambs", food: "grass", home: "on the farm", sound: "Baa" },
  { one: "horse", many: "horses", food: "hay and apples", home: "on the farm", sound: "Neigh" },
  { one: "hen", many: "hens", food: "seeds and corn", home: "on the farm", sound: "Cluck", feathers: true },
  { one: "monkey", many: "monkeys", food: "bananas", home: "in the trees" },
  { one: "elephant", many: "elephants", food: "leaves and grass", home: "where it is warm" },
  { one: "lion", many: "lions", food: "meat", home: "where it is warm", sound: "Roar" },
  {
    one: "parrot",
    many: "parrots",
    food: "seeds and fruit",
    home: "in the trees",
    sound: "Squawk",
    feathers: true,
  },
  { one: "deer", many: "deer", food: "leaves and grass", home: "in the forest" },
  { one: "fish", many: "fish", food: "bugs and little plants", home: "in the water" },
  { one: "bee", many: "bees", food: "the sweet juice of flowers", home: "in the garden with the flowers" },
  { one: "crab", many: "crabs", food: "little fish", home: "at the beach" },
];

function factsOf(noun: string): AnimalFacts | undefined {
  return ANIMAL_FACTS.find((a) => a.one === noun);
}

const COLOR_WORDS = [
  "red",
  "blue",
  "green",
  "yellow",
  "pink",
  "purple",
  "orange",
  "white",
  "brown",
  "gold",
  "silver",
];

const KINDS: Kind[] = [
  { noun: "girl", plural: "girls", animal: false },
  { noun: "boy", plural: "boys", animal: false },
  {
    noun: "cat",
    plural: "cats",
    animal: true,
    sound: "Meow",
    hobbies: ["chase butterflies", "sleep in the sun", "play with yarn"],
  },
  {
    noun: "dog",
    plural: "dogs",
    animal: true,
    sound: "Woof",
    hobbies: ["run fast", "dig holes", "play fetch"],
  },
  {
    noun: "puppy",
    plural: "puppies",
    animal: true,
    sound: "Woof",
    hobbies: ["run fast", "chase balls", "roll in the grass"],
  },
  {
    noun: "kitten",
    plural: "kittens",
    animal: true,
    sound: "Meow",
    hobbies: ["chase butterflies", "play with yarn", "climb on boxes"],
  },
  {
    noun: "rabbit",
    plural: "rabbits",
    animal: true,
    hobbies: ["hop in the grass", "eat carrots", "dig in the dirt"],
  },
  {
    noun: "bunny",
    plural: "bunnies",
    animal: true,
    hobbies: ["hop in the grass", "eat carrots", "play hide and seek"],
  },
  {
    noun: "bird",
    plural: "birds",
    animal: true,
    sound: "Tweet",
    hobbies: ["fly high", "sing songs", "look for seeds"],
  },
  {
    noun: "duck",
    plural: "ducks",
    animal: true,
    sound: "Quack",
    hobbies: ["swim in the pond", "splash in the water", "waddle around"],
  },
  {
    noun: "frog",
    plural: "frogs",
    animal: true,
    sound: "Ribbit",
    hobbies: ["jump high", "swim in the pond", "catch bugs"],
  },
  {
    noun: "fox",
    plural: "foxes",
    animal: true,
    hobbies: ["run in the woods", "play hide and seek", "explore"],
  },
  { noun: "bear", plural: "bears", animal: true, hobbies: ["eat honey", "climb trees", "take long naps"] },
  {
    noun: "mouse",
    plural: "mice",
    animal: true,
    sound: "Squeak",
    hobbies: ["eat cheese", "run around", "explore"],
  },
  {
    noun: "owl",
    plural: "owls",
    animal: true,
    sound: "Hoot",
    hobbies: ["fly at night", "look at the stars", "read books"],
  },
  {
    noun: "squirrel",
    plural: "squirrels",
    animal: true,
    hobbies: ["climb trees", "collect nuts", "jump from branch to branch"],
  },
  {
    noun: "turtle",
    plural: "turtles",
    animal: true,
    hobbies: ["swim in the pond", "sit in the sun", "walk slowly"],
  },
  {
    noun: "pig",
    plural: "pigs",
    animal: true,
    sound: "Oink",
    hobbies: ["roll in the mud", "eat apples", "play in the mud"],
  },
  {
    noun: "cow",
    plural: "cows",
    animal: true,
    sound: "Moo",
    hobbies: ["eat grass", "walk in the field", "sing songs"],
  },
  {
    noun: "lamb",
    plural: "lambs",
    animal: true,
    sound: "Baa",
    hobbies: ["jump in the field", "eat grass", "run around"],
  },
  {
    noun: "monkey",
    plural: "monkeys",
    animal: true,
    hobbies: ["swing from trees", "eat bananas", "play tricks"],
  },
  {
    noun: "elephant",
    plural: "elephants",
    animal: true,
    hobbies: ["splash water", "walk with friends", "eat leaves"],
  },
  {
    noun: "lion",
    plural: "lions",
    animal: true,
    sound: "Roar",
    hobbies: ["run fast", "sleep in the sun", "play with friends"],
  },
  {
    noun: "parrot",
    plural: "parrots",
    animal: true,
    sound: "Squawk",
    hobbies: ["sing songs", "fly high", "talk to friends"],
  },
  {
    noun: "horse",
    plural: "horses",
    animal: true,
    sound: "Neigh",
    hobbies: ["run in the field", "eat apples", "jump over logs"],
  },
  {
    noun: "hen",
    plural: "hens",
    animal: true,
    sound: "Cluck",
    hobbies: ["look for seeds", "walk in the yard", "sit on eggs"],
  },
  {
    noun: "deer",
    plural: "deer",
    animal: true,
    hobbies: ["run in the woods", "eat leaves", "jump over logs"],
  },
];

const HERO_ADJ = [
  "little",
  "small",
  "happy",
  "kind",
  "curious",
  "brave",
  "shy",
  "friendly",
  "playful",
  "young",
  "clever",
  "silly",
];
const TRAITS = [
  "kind",
  "curious",
  "brave",
  "shy",
  "friendly",
  "playful",
  "clever",
  "gentle",
  "funny",
  "cheerful",
];

interface Place {
  name: string;
  /** "in the park", "at the beach". */
  at: string;
  /** Things found there (plural nouns). */
  sights: string[];
  /** Hiding spots ("under a bench"). */
  spots: string[];
  outdoor: boolean;
}

const PLACES: Place[] = [
  {
    name: "park",
    at: "in the park",
    sights: ["swings", "trees", "ducks", "flowers"],
    spots: ["under a bench", "behind a tree", "near the swings", "in the tall grass"],
    outdoor: true,
  },
  {
    name: "garden",
    at: "in the garden",
    sights: ["flowers", "bees", "butterflies", "carrots"],
    spots: ["under a big leaf", "behind the flowers", "next to the fence", "in a pot"],
    outdoor: true,
  },
  {
    name: "forest",
    at: "in the forest",
    sights: ["tall trees", "mushrooms", "birds", "squirrels"],
    spots: ["under a log", "behind a rock", "in a hole in a tree", "under some leaves"],
    outdoor: true,
  },
  {
    name: "beach",
    at: "at the beach",
    sights: ["shells", "waves", "crabs", "boats"],
    spots: ["in the sand", "behind a rock", "near the water", "under a towel"],
    outdoor: true,
  },
  {
    name: "farm",
    at: "on the farm",
    sights: ["cows", "pigs", "hens", "horses"],
    spots: ["in the barn", "behind the hay", "near the fence", "under the cart"],
    outdoor: true,
  },
  {
    name: "pond",
    at: "by the pond",
    sights: ["frogs", "ducks", "fish", "lily pads"],
    spots: ["in the reeds", "under a rock", "behind a bush", "near the water"],
    outdoor: true,
  },
  {
    name: "meadow",
    at: "in the meadow",
    sights: ["flowers", "butterflies", "bees", "rabbits"],
    spots: ["in the tall grass", "behind a bush", "under a flower", "near a big rock"],
    outdoor: true,
  },
  {
    name: "hill",
    at: "on the hill",
    sights: ["clouds", "birds", "sheep", "trees"],
    spots: ["behind a rock", "in the grass", "under a tree", "near a bush"],
    outdoor: true,
  },
  {
    name: "yard",
    at: "in the yard",
    sights: ["birds", "flowers", "bugs", "toys"],
    spots: ["under the slide", "behind the shed", "in the sandbox", "under a bush"],
    outdoor: true,
  },
  {
    name: "river",
    at: "by the river",
    sights: ["fish", "rocks", "boats", "ducks"],
    spots: ["under a rock", "in the reeds", "behind a log", "near the bridge"],
    outdoor: true,
  },
  {
    name: "house",
    at: "in the house",
    sights: ["toys", "books", "pictures", "chairs"],
    spots: ["under the bed", "behind the sofa", "in the toy box", "under a pillow"],
    outdoor: false,
  },
  {
    name: "kitchen",
    at: "in the kitchen",
    sights: ["pots", "cups", "apples", "cookies"],
    spots: ["under the table", "behind a pot", "in a drawer", "next to the bread"],
    outdoor: false,
  },
  {
    name: "school",
    at: "at school",
    sights: ["books", "desks", "crayons", "friends"],
    spots: ["under a desk", "behind the door", "in a bag", "near the books"],
    outdoor: false,
  },
  {
    name: "library",
    at: "at the library",
    sights: ["books", "pictures", "tables", "maps"],
    spots: ["behind a book", "under a table", "on a shelf", "near the door"],
    outdoor: false,
  },
  {
    name: "zoo",
    at: "at the zoo",
    sights: ["lions", "monkeys", "elephants", "birds"],
    spots: ["behind a tree", "under a bench", "near the gate", "by the water"],
    outdoor: true,
  },
];

interface Thing {
  noun: string;
  plural: string;
  /** Colour / look adjectives that suit it. */
  adjs: string[];
  /** What one does with it ("play with it", "read it"). */
  use: string;
}

const THINGS: Thing[] = [
  { noun: "ball", plural: "balls", adjs: ["red", "blue", "big", "bouncy", "yellow"], use: "play with it" },
  {
    noun: "kite",
    plural: "kites",
    adjs: ["red", "green", "big", "pretty", "colorful"],
    use: "fly it in the wind",
  },
  { noun: "hat", plural: "hats", adjs: ["red", "blue", "big", "funny", "warm"], use: "wear it every day" },
  {
    noun: "toy car",
    plural: "toy cars",
    adjs: ["red", "blue", "little", "shiny", "fast"],
    use: "race it on the floor",
  },
  { noun: "doll", plural: "dolls", adjs: ["pretty", "old", "little", "soft"], use: "play with it" },
  {
    noun: "teddy bear",
    plural: "teddy bears",
    adjs: ["soft", "brown", "old", "fluffy"],
    use: "hug it at night",
  },
  { noun: "book", plural: "books", adjs: ["big", "old", "new", "blue", "funny"], use: "read it" },
  { noun: "boat", plural: "boats", adjs: ["little", "red", "wooden", "blue"], use: "sail it on the water" },
  {
    noun: "balloon",
    plural: "balloons",
    adjs: ["red", "yellow", "big", "pink", "green"],
    use: "hold it up high",
  },
  { noun: "drum", plural: "drums", adjs: ["little", "red", "loud", "new"], use: "play music on it" },
  {
    noun: "shell",
    plural: "shells",
    adjs: ["pink", "white", "pretty", "shiny", "little"],
    use: "listen to the sea in it",
  },
  {
    noun: "stone",
    plural: "stones",
    adjs: ["shiny", "smooth", "blue", "little", "round"],
    use: "keep it in a pocket",
  },
  {
    noun: "crayon",
    plural: "crayons",
    adjs: ["red", "green", "purple", "orange", "blue"],
    use: "draw with it",
  },
  {
    noun: "box",
    plural: "boxes",
    adjs: ["blue", "little", "old", "shiny", "wooden"],
    use: "keep treasures in it",
  },
  {
    noun: "scarf",
    plural: "scarves",
    adjs: ["warm", "red", "soft", "long", "green"],
    use: "wear it on cold days",
  },
  { noun: "whistle", plural: "whistles", adjs: ["shiny", "silver", "little", "loud"], use: "blow it" },
  { noun: "key", plural: "keys", adjs: ["gold", "shiny", "old", "little", "silver"], use: "keep it safe" },
  { noun: "puzzle", plural: "puzzles", adjs: ["big", "new", "colorful", "hard"], use: "put it together" },
  { noun: "bucket", plural: "buckets", adjs: ["red", "yellow", "little", "blue"], use: "fill it with sand" },
  {
    noun: "blanket",
    plural: "blankets",
    adjs: ["soft", "warm", "blue", "fluffy", "old"],
    use: "sleep with it",
  },
];

interface Treat {
  noun: string;
  /** "a cookie", "some cake". */
  some: string;
  plural: string;
}

const TREATS: Treat[] = [
  { noun: "cookie", some: "a cookie", plural: "cookies" },
  { noun: "apple", some: "an apple", plural: "apples" },
  { noun: "cake", some: "a piece of cake", plural: "cakes" },
  { noun: "candy", some: "some candy", plural: "candies" },
  { noun: "banana", some: "a banana", plural: "bananas" },
  { noun: "sandwich", some: "a sandwich", plural: "sandwiches" },
  { noun: "pie", some: "a pie", plural: "pies" },
  { noun: "orange", some: "an orange", plural: "oranges" },
  { noun: "muffin", some: "a muffin", plural: "muffins" },
  { noun: "strawberry", some: "a strawberry", plural: "strawberries" },
];

const FEARS = [
  {
    thing: "the dark",
    face: "turn off the light",
    ok: "the dark was just the night, and the stars were pretty",
  },
  { thing: "the big slide", face: "go down the big slide", ok: "the slide was fast and fun" },
  { thing: "the water", face: "put a foot in the water", ok: "the water was cool and nice" },
  {
    thing: "thunder",
    face: "look out the window at the storm",
    ok: "the thunder was only loud, and it could not hurt anyone",
  },
  { thing: "the tall tree", face: "climb the tall tree", ok: "the view from the top was wonderful" },
  {
    thing: "the big dog next door",
    face: "say hello to the big dog",
    ok: "the big dog was friendly and wagged its tail",
  },
  {
    thing: "the first day of school",
    face: "walk into the classroom",
    ok: "the teacher was kind and the other children were nice",
  },
  { thing: "the deep snow", face: "jump into the snow", ok: "the snow was soft and fun to play in" },
];

const PROBLEMS = [
  {
    who: "bird",
    trouble: "had a hurt wing and could not fly",
    fix: "wrapped the wing with a soft cloth and gave the bird some food and water",
    after: "A few days later, the bird could fly again",
  },
  {
    who: "kitten",
    trouble: "was stuck up in a tall tree",
    fix: "got a ladder and helped the kitten climb down",
    after: "The kitten purred and rubbed against their legs",
  },
  {
    who: "duck",
    trouble: "was lost and could not find its mother",
    fix: "walked with the little duck along the pond until they found its mother",
    after: "The mother duck quacked with joy",
  },
  {
    who: "puppy",
    trouble: "was cold and wet in the rain",
    fix: "dried the puppy with a towel and gave it a warm place to sleep",
    after: "The puppy wagged its tail and licked their hand",
  },
  {
    who: "turtle",
    trouble: "was on its back and could not turn over",
    fix: "gently turned the turtle over",
    after: "The turtle smiled and walked slowly away",
  },
  {
    who: "squirrel",
    trouble: "had dropped all its nuts on the ground",
    fix: "picked up the nuts one by one and put them in a pile",
    after: "The squirrel was very thankful",
  },
  {
    who: "lamb",
    trouble: "was stuck behind a fence",
    fix: "opened the gate so the lamb could go back to the field",
    after: "The lamb ran to its mother and said baa",
  },
  {
    who: "frog",
    trouble: "was far from the pond on a hot day",
    fix: "carried the frog back to the cool water",
    after: "The frog jumped in with a big splash",
  },
];

const BUILDS = [
  {
    what: "a sand castle",
    fail: "a big wave came and washed it away",
    place: "beach",
    material: "sand",
    again: "built it a little farther from the water",
  },
  {
    what: "a snowman",
    fail: "the head fell off and broke",
    place: "yard",
    material: "snow",
    again: "made the body bigger and pressed the head on firmly",
  },
  {
    what: "a tall tower of blocks",
    fail: "it fell down with a crash",
    place: "house",
    material: "blocks",
    again: "put the big blocks at the bottom and the small ones on top",
  },
  {
    what: "a card for mom",
    fail: "the paint spilled all over the paper",
    place: "kitchen",
    material: "paper and paint",
    again: "started a new card and painted slowly",
  },
  {
    what: "a little boat",
    fail: "it sank as soon as it touched the water",
    place: "river",
    material: "sticks and leaves",
    again: "tied the sticks tightly with string",
  },
  {
    what: "a bird house",
    fail: "the roof would not stay on",
    place: "yard",
    material: "wood",
    again: "used more nails and held the roof very still",
  },
  {
    what: "a cake",
    fail: "it came out of the oven flat and burnt",
    place: "kitchen",
    material: "flour, eggs and sugar",
    again: "watched the oven carefully",
  },
];

const DISCOVERIES: { find: string; verb?: string; end: string }[] = [
  { find: "a little path behind the bushes", end: "a hidden garden full of flowers" },
  { find: "an old map in a box", end: "a big tree with a swing on it" },
  { find: "a trail of shiny stones", end: "a small pond with golden fish" },
  { find: "a tiny door at the bottom of a tree", end: "a cozy room where a family of mice lived" },
  { find: "some big footprints in the mud", verb: "saw", end: "a friendly old bear eating honey" },
  { find: "a sound coming from a bush", verb: "heard", end: "a nest with three baby birds" },
  { find: "a bright light on the hill", verb: "saw", end: "hundreds of little fireflies" },
];

/** Places a hero can "live near". */
const NEAR = ["park", "forest", "beach", "farm", "pond", "meadow", "hill", "river", "zoo"];

const GAMES = ["tag", "hide and seek", "catch", "jump rope", "a game of pretend", "ball"];

const MORALS_SHARE = [
  "Sharing makes everyone happy.",
  "When you share, you have more fun.",
  "It is good to share with friends.",
  "A friend who shares is a good friend.",
];
const MORALS_HELP = [
  "It is good to be kind to others.",
  "Helping others makes your heart happy.",
  "Being kind is always the right thing to do.",
  "When we help each other, everyone is happy.",
];
const MORALS_TRY = [
  "If at first you do not succeed, try again.",
  "Never give up, even when things are hard.",
  "Trying again is how we learn.",
  "Hard work and patience pay off.",
];
const MORALS_BRAVE = [
  "Being brave means trying even when you are scared.",
  "Sometimes the things we fear are not so scary after all.",
  "You can be brave, even when you feel afraid.",
];
const MORALS_FRIEND = [
  "A new friend can make any day special.",
  "It is good to say hello to someone new.",
  "Friends make everything more fun.",
];
const MORALS_LISTEN = [
  "It is important to listen to your mom and dad.",
  "Listening keeps us safe.",
  "It is good to say sorry when you make a mistake.",
];

// ---------------------------------------------------------------------------------------------
// Grammar helpers

/** "a" or "an" for the word that follows. */
export function article(word: string): string {
  return /^[aeiou]/i.test(word) && !/^(uni|use|one|eu)/i.test(word) ? "an" : "a";
}

/** `word` with its article: "an apple", "a ball". */
export function withArticle(word: string): string {
  return `${article(word)} ${word}`;
}

/** "Lily's", "Whiskers'". */
function poss(name: string): string {
  return name.endsWith("s") ? `${name}'` : `${name}'s`;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

interface Person {
  name: string;
  kind: Kind;
  female: boolean;
  adj: string;
  he: string;
  him: string;
  his: string;
}

function person(name: string, kind: Kind, female: boolean, adj: string): Person {
  return {
    name,
    kind,
    female,
    adj,
    he: female ? "she" : "he",
    him: female ? "her" : "him",
    his: female ? "her" : "his",
  };
}

class Story {
  readonly out: string[] = [];
  /** The introduction already started the day ("One day, ... went to play"). */
  started = false;
  constructor(readonly rng: Rng) {}

  pick<T>(a: readonly T[]): T {
    return a[this.rng.next() % a.length]!;
  }

  chance(p: number): boolean {
    return this.rng.float() < p;
  }

  /** Two different items of `a`. */
  pick2<T>(a: readonly T[]): [T, T] {
    const i = this.rng.next() % a.length;
    let j = this.rng.next() % (a.length - 1);
    if (j >= i) j++;
    return [a[i]!, a[j]!];
  }

  /** Adds sentences (each already punctuated); the first letter is capitalised. */
  say(...sentences: string[]): void {
    for (const s of sentences) this.out.push(cap(s));
  }

  /** A line of dialogue: `"Words," Lily said.` or `Lily said, "Words."` */
  quote(speaker: string, words: string, verb = "said"): void {
    const last = words.slice(-1);
    const q = /[.!?]/.test(last) ? words : `${words}.`;
    if (this.chance(0.7)) {
      // "Words," X said. — a final "." becomes ","; "!" and "?" stay.
      const inner = q.endsWith(".") ? `${q.slice(0, -1)},` : q;
      this.out.push(`"${cap(inner)}" ${speaker} ${verb}.`);
    } else {
      this.out.push(`${cap(speaker)} ${verb}, "${cap(q)}"`);
    }
  }

  text(): string {
    return this.out.join(" ");
  }
}

function randomPerson(s: Story, childOnly = false, avoid?: Person): Person {
  for (;;) {
    const child = childOnly || s.chance(0.55);
    let p: Person;
    if (child) {
      const female = s.chance(0.5);
      const kind = KINDS[female ? 0 : 1]!;
      p = person(s.pick(female ? GIRL_NAMES : BOY_NAMES), kind, female, s.pick(HERO_ADJ));
    } else {
      const animals = KINDS.filter((k) => k.animal);
      p = person(s.pick(PET_NAMES), s.pick(animals), s.chance(0.5), s.pick(HERO_ADJ));
    }
    if (!avoid || (p.name !== avoid.name && p.kind.noun !== avoid.kind.noun)) return p;
  }
}

/** "Lily, a little girl," / "a little fox named Red" forms. */
function introduce(s: Story, hero: Person, place: Place): void {
  const desc = `${withArticle(hero.adj)} ${hero.kind.noun}`;
  const hobby =
    hero.kind.animal && s.chance(0.7) ? s.pick(hero.kind.hobbies ?? CHILD_HOBBIES) : s.pick(CHILD_HOBBIES);
  const trait = s.pick(TRAITS);
  switch (s.rng.next() % 6) {
    case 0:
      s.say(`Once upon a time, there was ${desc} named ${hero.name}.`);
      s.say(`${hero.he} loved to ${hobby}.`);
      break;
    case 1:
      s.say(`Once upon a time, in a small town, there lived ${desc} named ${hero.name}.`);
      s.say(`${hero.name} was very ${trait} and liked to ${hobby}.`);
      break;
    case 2:
      s.say(`${hero.name} was ${desc} who loved to ${hobby}.`);
      break;
    case 3:
      s.say(`There was once ${desc} called ${hero.name}.`);
      if (NEAR.includes(place.name)) s.say(`${cap(hero.he)} lived near the ${place.name}.`);
      else s.say(`${cap(hero.he)} liked to ${hobby}.`);
      break;
    case 4:
      s.say(`One day, ${desc} named ${hero.name} went to play ${place.at}.`);
      s.started = true;
      break;
    default:
      if (hero.kind.animal)
        s.say(`Once upon a time, ${hero.name} the ${hero.kind.noun} lived in a little house.`);
      else
        s.say(
          `Once upon a time, there was ${withArticle(hero.kind.noun)} named ${hero.name} who lived in a little house.`,
        );
      s.say(`Every day, ${hero.he} liked to ${hobby}.`);
  }
  heroFacts(s, hero, /lived|lives/.test(s.out.join(" ")));
}

/** Sometimes a sentence about what the hero eats, where it lives, or its feathers. */
function heroFacts(s: Story, hero: Person, saidHome: boolean): void {
  const f = factsOf(hero.kind.noun);
  if (!f || !s.chance(0.5)) return;
  switch (s.rng.next() % 3) {
    case 0:
      s.say(`Like all ${f.many}, ${hero.name} liked to eat ${f.food}.`);
      break;
    case 1:
      if (!saidHome) s.say(`${cap(hero.he)} lived ${f.home}.`);
      break;
    default:
      if (f.feathers)
        s.say(`${cap(hero.he)} had soft ${s.pick(COLOR_WORDS)} feathers and a little yellow beak.`);
      else s.say(`${poss(hero.name)} favorite food was ${f.food}.`);
  }
}

function opening(s: Story): string {
  if (s.started) return s.pick(["After a while", "Soon", "Then", "A little later"]);
  return s.pick([
    "One day",
    "One sunny morning",
    "One afternoon",
    "One morning",
    "Later that day",
    "One bright day",
  ]);
}

function feel(s: Story, who: Person, mood: "happy" | "sad"): void {
  if (mood === "happy") {
    s.say(
      s.pick([
        `${who.name} was so happy.`,
        `${who.name} smiled a big smile.`,
        `${who.name} jumped up and down with joy.`,
        `${who.name} felt warm and happy inside.`,
        `${who.name} laughed and clapped ${who.his} hands.`,
      ]),
    );
  } else {
    s.say(
      s.pick([
        `${who.name} felt very sad.`,
        `${who.name} began to cry.`,
        `${who.name} sat down and felt sad.`,
        `Tears came to ${poss(who.name)} eyes.`,
        `${who.name} was sad and did not know what to do.`,
        `${who.name} felt worried and sad.`,
      ]),
    );
  }
}

function parentOf(s: Story, hero: Person): { name: string; they: string } {
  const mom = s.chance(0.6);
  if (hero.kind.animal && s.chance(0.5)) {
    return mom ? { name: `${hero.his} mother`, they: "she" } : { name: `${hero.his} father`, they: "he" };
  }
  return mom ? { name: `${hero.his} mom`, they: "she" } : { name: `${hero.his} dad`, they: "he" };
}

// ---------------------------------------------------------------------------------------------
// Plots

type Plot = (s: Story) => void;

const lostThing: Plot = (s) => {
  const hero = randomPerson(s);
  const friend = randomPerson(s, false, hero);
  const place = s.pick(PLACES.filter((p) => p.outdoor));
  const thing = s.pick(THINGS);
  const adj = s.pick(thing.adjs);
  const [spot1, spot2] = s.pick2(place.spots);
  introduce(s, hero, place);
  s.say(
    s.pick([
      `${hero.name} had ${withArticle(adj)} ${thing.noun}. ${cap(hero.he)} loved to ${thing.use}.`,
      `${cap(hero.his)} favorite toy was ${withArticle(adj)} ${thing.noun}.`,
      `${hero.name} had ${withArticle(adj)} ${thing.noun} that ${hero.his} grandma gave ${hero.him}.`,
    ]),
  );
  s.say(`${opening(s)}, ${hero.name} took the ${thing.noun} to the ${place.name}.`);
  s.say(
    s.pick([
      `${cap(hero.he)} played for a long time. When ${hero.he} looked down, the ${thing.noun} was gone!`,
      `${cap(hero.he)} put it down to look at the ${s.pick(place.sights)}. When ${hero.he} turned around, the ${thing.noun} was not there!`,
      `The wind was strong, and soon ${hero.his} ${thing.noun} was gone.`,
    ]),
  );
  feel(s, hero, "sad");
  s.quote(
    hero.name,
    s.pick([`Where is my ${thing.noun}?`, `I lost my ${thing.noun}!`, `Oh no, my ${thing.noun} is gone!`]),
    s.pick(["cried", "said", "shouted"]),
  );
  s.say(`Just then, ${withArticle(friend.adj)} ${friend.kind.noun} named ${friend.name} came by.`);
  s.quote(friend.name, s.pick(["Why are you sad?", "What is wrong?", "Are you okay?"]), "asked");
  s.say(`${hero.name} told ${friend.name} about the ${thing.noun}.`);
  if (COLOR_WORDS.includes(adj) && s.chance(0.7)) {
    s.quote(friend.name, `What color is it?`, "asked");
    s.quote(hero.name, `It is ${adj}.`);
  }
  s.quote(
    friend.name,
    s.pick(["I will help you look for it!", "Let's look for it together.", "Don't worry, we will find it."]),
  );
  s.say(`They looked ${spot1}. It was not there. Then they looked ${spot2}.`);
  s.say(
    s.pick([
      `There it was!`,
      `And there was the ${thing.noun}!`,
      `${friend.name} saw something ${adj}. It was the ${thing.noun}!`,
    ]),
  );
  feel(s, hero, "happy");
  s.quote(
    hero.name,
    s.pick([
      `Thank you, ${friend.name}!`,
      `Thank you for helping me, ${friend.name}!`,
      "You are a good friend!",
    ]),
  );
  s.say(
    s.pick([
      `From that day on, ${hero.name} and ${friend.name} were best friends.`,
      `They played with the ${thing.noun} together until the sun went down.`,
      `After that, ${hero.name} always kept the ${thing.noun} close.`,
    ]),
  );
  if (s.chance(0.6)) s.say(s.pick(["Friends help each other.", ...MORALS_HELP]));
};

const sharing: Plot = (s) => {
  const hero = randomPerson(s);
  const friend = randomPerson(s, false, hero);
  const place = s.pick(PLACES);
  const useTreat = s.chance(0.5);
  const treat = s.pick(TREATS);
  const thing = s.pick(THINGS);
  const item = useTreat ? treat.plural : `${s.pick(thing.adjs)} ${thing.noun}`;
  const itemShort = useTreat ? treat.plural : thing.noun;
  introduce(s, hero, place);
  if (useTreat) {
    s.say(`${opening(s)}, ${parentOf(s, hero).name} gave ${hero.him} three ${treat.plural}.`);
    s.say(
      `${hero.name} took the ${treat.plural} ${s.pick(["outside", `to the ${place.name}`, "to a sunny spot"])}.`,
    );
  } else {
    s.say(`${opening(s)}, ${hero.name} got a new ${item}. It was the best present ever.`);
    s.say(`${cap(hero.he)} played with it ${place.at}.`);
  }
  s.say(`Soon, ${hero.his} friend ${friend.name} the ${friend.kind.noun} came over.`);
  if (useTreat && s.chance(0.5)) s.say(`${friend.name} was very hungry.`);
  s.quote(
    friend.name,
    useTreat ? `Can I have one of your ${treat.plural}?` : `Can I play with your ${itemShort}?`,
    "asked",
  );
  s.quote(
    hero.name,
    s.pick(
      useTreat
        ? ["No, they are mine!", "No! I want them all for me."]
        : ["No, it is mine!", "No! I want it all for me."],
    ),
  );
  s.say(
    `${friend.name} looked down and walked away. ${cap(friend.he)} was ${s.pick(["very sad", "sad and a little angry", "very sad and lonely"])}.`,
  );
  s.say(
    s.pick([
      `${hero.name} sat alone. ${cap(hero.he)} did not feel happy anymore.`,
      `${hero.name} played alone, but it was not fun.`,
      `${hero.name} thought about ${hero.his} friend. ${cap(hero.he)} felt bad inside.`,
    ]),
  );
  s.say(`So ${hero.he} ran after ${friend.name}.`);
  s.quote(
    hero.name,
    useTreat
      ? `I am sorry. Please have some ${treat.plural} with me.`
      : `I am sorry. Let's play with my ${itemShort} together.`,
  );
  s.say(
    `${friend.name} smiled. ${useTreat ? `They sat in the sun and ate the ${treat.plural} together.` : "They took turns and played all afternoon."}`,
  );
  s.say(
    s.pick([
      "It was much more fun than playing alone.",
      "Both friends were very happy.",
      `${hero.name} learned that sharing feels good.`,
    ]),
  );
  if (s.chance(0.7)) s.say(s.pick(MORALS_SHARE));
};

const fear: Plot = (s) => {
  const hero = randomPerson(s);
  const f = s.pick(FEARS);
  const parent = parentOf(s, hero);
  introduce(s, hero, s.pick(PLACES));
  s.say(`But ${hero.name} was scared of ${f.thing}.`);
  s.quote(
    hero.name,
    s.pick([`I do not want to ${f.face}.`, `I am too scared to ${f.face}.`, `I can't do it!`]),
  );
  s.say(`${cap(parent.name)} sat down next to ${hero.him}.`);
  s.quote(
    parent.name,
    s.pick([
      "It is okay to be scared. I will be right here with you.",
      "You are braver than you think. Let's try together.",
      "Take a deep breath. You can do it.",
      "Let's count to ten together. Then you can try.",
    ]),
  );
  s.say(`${hero.name} took a deep breath. ${cap(hero.he)} held ${parent.name}'s hand.`);
  s.say(`Slowly, ${hero.he} ${s.pick(["tried", "decided", "was ready"])} to ${f.face}.`);
  s.say(`It was not scary at all! ${cap(hero.he)} saw that ${f.ok}.`);
  s.quote(
    hero.name,
    s.pick(["I did it!", "Look, I am brave!", "That was fun!"]),
    s.pick(["shouted", "said", "cried"]),
  );
  s.say(`${cap(parent.name)} gave ${hero.him} a big hug. ${cap(parent.they)} was very proud.`);
  if (s.chance(0.7)) s.say(s.pick(MORALS_BRAVE));
};

const newFriend: Plot = (s) => {
  const hero = randomPerson(s);
  const other = randomPerson(s, false, hero);
  const place = s.pick(PLACES.filter((p) => p.outdoor));
  const game = s.pick(GAMES);
  introduce(s, hero, place);
  s.say(
    s.pick([
      `But ${hero.name} did not have any friends ${place.at}, and ${hero.he} felt lonely.`,
      `${hero.name} was new in town and did not know anyone.`,
      `${opening(s)}, ${hero.name} went to the ${place.name} alone. ${cap(hero.he)} felt a little lonely.`,
    ]),
  );
  s.say(
    `Then ${hero.he} saw ${withArticle(other.adj)} ${other.kind.noun} sitting by ${other.female ? "herself" : "himself"} near the ${s.pick(place.sights)}.`,
  );
  s.say(`${hero.name} was a little shy, but ${hero.he} walked over.`);
  s.quote(hero.name, `Hello! My name is ${hero.name}. What is your name?`);
  s.quote(`the ${other.kind.noun}`, `My name is ${other.name}.`);
  if (other.kind.sound && s.chance(0.5)) s.say(`"${other.kind.sound}!" ${other.name} added with a smile.`);
  const otherFacts = factsOf(other.kind.noun);
  if (s.chance(0.5)) {
    s.quote(hero.name, "Where do you live?", "asked");
    s.quote(
      other.name,
      otherFacts ? `I live ${otherFacts.home}.` : `I live in the little house by the ${place.name}.`,
    );
  }
  s.quote(
    hero.name,
    s.pick([`Do you want to play ${game} with me?`, `Will you play ${game} with me?`]),
    "asked",
  );
  s.say(
    `${other.name} nodded, and they played ${game} ${s.pick(["all day", "until it was time for dinner", "for a long time"])}.`,
  );
  s.say(
    s.pick([
      "They laughed and ran and had so much fun.",
      "They laughed a lot.",
      `${hero.name} was not lonely anymore.`,
    ]),
  );
  s.say(`When it was time to go home, ${other.name} said, "Can we play again tomorrow?"`);
  s.quote(hero.name, "Yes! You are my new best friend.");
  if (s.chance(0.6)) s.say(s.pick(MORALS_FRIEND));
};

const helping: Plot = (s) => {
  const hero = randomPerson(s);
  const p = s.pick(PROBLEMS);
  const place = s.pick(PLACES.filter((x) => x.outdoor));
  introduce(s, hero, place);
  s.say(`${opening(s)}, ${hero.name} was walking ${place.at} when ${hero.he} heard a small sound.`);
  s.say(`It was a little ${p.who}. The ${p.who} ${p.trouble}.`);
  s.quote(
    hero.name,
    s.pick([
      `Oh no! Poor little ${p.who}.`,
      "Don't worry, I will help you.",
      `Are you okay, little ${p.who}?`,
    ]),
  );
  s.say(`${hero.name} ${p.fix.replace("their", hero.his)}.`);
  s.say(`${p.after.replace("their", hero.his)}.`);
  s.quote(
    hero.name,
    s.pick(["You are welcome, little friend.", "I am glad you are okay.", "Be careful next time!"]),
  );
  s.say(
    s.pick([
      `${hero.name} went home and told ${parentOf(s, hero).name} all about it.`,
      `${hero.name} felt proud and happy all day.`,
      `That night, ${hero.name} smiled as ${hero.he} fell asleep.`,
    ]),
  );
  if (s.chance(0.7)) s.say(s.pick(MORALS_HELP));
};

const building: Plot = (s) => {
  const hero = randomPerson(s);
  const b = s.pick(BUILDS);
  const helper = s.chance(0.5) ? randomPerson(s, false, hero) : undefined;
  const place = PLACES.find((p) => p.name === b.place)!;
  introduce(s, hero, place);
  s.say(`${opening(s)}, ${hero.name} wanted to make ${b.what}.`);
  s.say(`${cap(hero.he)} got some ${b.material} and worked very hard ${place.at}.`);
  s.say(`But then ${b.fail}.`);
  s.quote(
    hero.name,
    s.pick(["Oh no! I will never do it.", "This is too hard!", "I want to give up."]),
    s.pick(["cried", "said"]),
  );
  if (helper) {
    s.say(`${helper.name} the ${helper.kind.noun} saw ${hero.him} and came to help.`);
    s.quote(
      helper.name,
      s.pick([
        "Let's try again together.",
        "Don't give up! I will help you.",
        "We can do it if we work together.",
      ]),
    );
    s.say(`This time, they ${b.again}.`);
  } else {
    s.say(`${hero.name} sat for a moment. Then ${hero.he} had an idea.`);
    s.say(`This time, ${hero.he} ${b.again}.`);
  }
  s.say(
    `At last, ${b.what} was done. It was ${s.pick(["beautiful", "perfect", "the best one ever", "just right"])}!`,
  );
  s.say(
    `${hero.name} felt very proud.${helper ? ` ${cap(hero.he)} thanked ${helper.name} for the help.` : ""}`,
  );
  if (s.chance(0.7)) s.say(s.pick(MORALS_TRY));
};

const adventure: Plot = (s) => {
  const hero = randomPerson(s);
  const d = s.pick(DISCOVERIES);
  const place = s.pick(PLACES.filter((p) => p.outdoor));
  const parent = parentOf(s, hero);
  introduce(s, hero, place);
  s.say(`${opening(s)}, ${hero.name} was playing ${place.at}.`);
  s.say(`${cap(hero.he)} ${d.verb ?? "found"} ${d.find}.`);
  s.quote(hero.name, s.pick(["I wonder where this goes.", "What is this?", "Let's see what is there!"]));
  s.say(`${hero.name} was curious, so ${hero.he} followed it.`);
  s.say(
    s.pick([
      `${cap(hero.he)} walked past ${s.pick(place.sights)} and ${s.pick(place.sights)}.`,
      `${cap(hero.he)} walked and walked.`,
      `The way was long, but ${hero.he} did not stop.`,
    ]),
  );
  s.say(`At the end, ${hero.he} found ${d.end}!`);
  s.quote(
    hero.name,
    s.pick(["Wow!", "This is amazing!", "How beautiful!"]),
    s.pick(["said", "whispered", "shouted"]),
  );
  s.say(`${hero.name} stayed there for a while and looked at everything.`);
  s.say(`Then ${hero.he} ran home to tell ${parent.name}.`);
  s.quote(
    parent.name,
    s.pick([
      "What a wonderful day you had!",
      "You found something very special.",
      "Next time, take me with you!",
    ]),
  );
  if (s.chance(0.3)) s.say(`That night, ${hero.name} told the whole story to ${hero.his} family.`);
  else if (s.chance(0.5)) s.say("It was the best day ever.");
};

const rainyDay: Plot = (s) => {
  const hero = randomPerson(s, true);
  const parent = parentOf(s, hero);
  const game = s.pick(GAMES);
  introduce(s, hero, s.pick(PLACES));
  s.say(`${opening(s)}, ${hero.name} wanted to play ${game} outside. But it was raining.`);
  s.say(
    `Big drops of rain fell on the window. ${hero.name} was ${s.pick(["sad", "bored", "sad and bored"])}.`,
  );
  s.quote(hero.name, "I want to go outside!");
  s.quote(
    parent.name,
    s.pick([
      "We can have fun inside. Let's build a fort with blankets!",
      "Let's bake cookies together.",
      "Why don't we draw a picture of the sun?",
      "Let's read a story together.",
    ]),
  );
  s.say(`${hero.name} and ${parent.name} had a lot of fun. ${cap(hero.he)} forgot all about the rain.`);
  s.say(
    `Later, the sun came out. ${hero.name} looked out the window and saw a big, ${s.pick(["beautiful", "bright", "colorful"])} rainbow in the sky.`,
  );
  s.quote(hero.name, s.pick(["Look, a rainbow!", "The rain made a rainbow!"]), "shouted");
  s.say(`${hero.name} learned that even a rainy day can be a good day.`);
};

const notListening: Plot = (s) => {
  const hero = randomPerson(s, true);
  const parent = parentOf(s, hero);
  const rule = s.pick([
    { dont: "run near the pond", did: "ran near the pond", oops: "slipped and fell into the mud" },
    { dont: "climb on the shelf", did: "climbed on the shelf", oops: "fell down and hurt a knee" },
    { dont: "play with the cups", did: "played with the cups", oops: "dropped a cup and it broke" },
    { dont: "eat all the cookies before dinner", did: "ate all the cookies", oops: "got a big tummy ache" },
    { dont: "go near the bees", did: "went near the bees", oops: "got a sting on the hand" },
  ]);
  introduce(s, hero, s.pick(PLACES));
  s.say(`${opening(s)}, ${parent.name} said, "Please do not ${rule.dont}."`);
  s.say(`But ${hero.name} did not listen. ${cap(hero.he)} ${rule.did} anyway.`);
  s.say(`Oh no! ${hero.name} ${rule.oops}.`);
  s.say(`${cap(hero.he)} cried and ran to ${parent.name}.`);
  s.quote(hero.name, `I am sorry. I should have listened.`);
  s.say(`${cap(parent.name)} hugged ${hero.him} and helped ${hero.him} feel better.`);
  s.quote(
    parent.name,
    s.pick([
      "It is okay. I am glad you are safe.",
      "Thank you for saying sorry.",
      "Next time, please listen.",
    ]),
  );
  s.say(`After that day, ${hero.name} always listened to ${parent.name}.`);
  if (s.chance(0.6)) s.say(s.pick(MORALS_LISTEN));
};

const dayOut: Plot = (s) => {
  const hero = randomPerson(s);
  const friend = randomPerson(s, false, hero);
  const place = s.pick(PLACES.filter((p) => p.outdoor));
  const treat = s.pick(TREATS);
  const weather = s.pick(["sunny", "warm", "bright", "windy", "cool"]);
  const [a, b] = s.pick2(place.sights);
  s.say(
    `It was a ${weather} day. ${hero.name} and ${hero.his} friend ${friend.name} went to the ${place.name}.`,
  );
  s.say(`They saw ${a} and ${b}.`);
  if (hero.kind.sound && s.chance(0.5))
    s.say(`"${hero.kind.sound}!" said ${hero.name}. That meant ${hero.he} was happy.`);
  s.quote(friend.name, s.pick([`Look at the ${a}!`, `I like the ${b}.`, `This is my favorite place.`]));
  const animal = ANIMAL_FACTS.find((x) => x.many === a);
  if (animal && s.chance(0.7)) {
    const one = withArticle(animal.one);
    if (animal.sound && s.chance(0.5)) {
      s.quote(hero.name, `What does ${one} say?`, "asked");
      s.quote(friend.name, `${cap(one)} says ${animal.sound.toLowerCase()}!`);
    } else {
      s.quote(hero.name, `Where does ${one} live?`, "asked");
      s.quote(
        friend.name,
        `${cap(one)} lives ${animal.home}. ${cap(animal.many)} like to eat ${animal.food}.`,
      );
    }
  }
  s.say(`They played ${s.pick(GAMES)} and ran until they were tired.`);
  s.say(
    `Then they sat under a tree and shared ${withArticle(treat.noun === "candy" ? "bag of candy" : treat.noun)}.`,
  );
  s.quote(
    hero.name,
    s.pick(["This is the best day!", "I love spending time with you.", "Let's come back tomorrow."]),
  );
  s.say(`When the sun went down, they walked home, happy and tired.`);
  s.say(`That night, ${hero.name} dreamed about the ${place.name}.`);
};

const PLOTS: Plot[] = [
  lostThing,
  sharing,
  fear,
  newFriend,
  helping,
  building,
  adventure,
  rainyDay,
  notListening,
  dayOut,
];

/** One story from its own stream: story `i` of `seed` is the same whatever n is. */
export function generateStory(seed: number, i: number): string {
  const s = new Story(Rng.derive(seed, `story ${i}`));
  s.pick(PLOTS)(s);
  return s.text();
}

/** `nStories` stories (see the module comment). */
export function generateCorpus(seed: number, nStories: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < nStories; i++) out.push(generateStory(seed, i));
  return out;
}
